//! `/health` and `/metrics`.
//!
//! `/health` is 200 `ok` when every dependency answers, 200 `degraded` when the API still
//! serves but something is down (Redis: lookups go to PostgreSQL; Kafka: sends get 503 and
//! the outbox waits; the hub: unsubscribes wait), and 503 `down` without PostgreSQL.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fred::prelude::*;
use rdkafka::producer::Producer;
use serde_json::json;

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

async fn postgres(s: &AppState) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&s.db)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 1s".into()),
    }
}

async fn redis(s: &AppState) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, s.redis.ping::<String>(None)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 1s".into()),
    }
}

async fn kafka(s: &AppState) -> Result<(), String> {
    let producer = s.producer.clone();
    let topic = s.config.kafka.messages_topic.clone();
    // librdkafka's metadata call blocks its thread.
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), CHECK_TIMEOUT)
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()))
}

fn check(r: &Result<(), String>) -> serde_json::Value {
    match r {
        Ok(()) => json!({"status": "up"}),
        Err(e) => json!({"status": "down", "error": e}),
    }
}

pub async fn health(State(s): State<AppState>) -> Response {
    let (pg, rd, kf) = tokio::join!(postgres(&s), redis(&s), kafka(&s));
    let group = &s.reactor.group;
    let consumer_ok = s.reactor.healthy.load(Ordering::Relaxed) && !group.starved();
    let consumer = if consumer_ok {
        json!({"status": "up", "lag": group.lag(), "rejoins": group.rejoins()})
    } else if group.starved() {
        json!({"status": "down", "error": "holding no partition while the group lags",
               "lag": group.lag(), "rejoins": group.rejoins()})
    } else {
        json!({"status": "down", "error": s.reactor.last_error.lock().clone()})
    };
    let (status, word) = if pg.is_err() {
        (StatusCode::SERVICE_UNAVAILABLE, "down")
    } else if rd.is_err() || kf.is_err() || !consumer_ok {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    };
    (
        status,
        Json(json!({
            "status": word,
            "checks": {"postgres": check(&pg), "redis": check(&rd), "kafka": check(&kf),
                       "state_consumer": consumer},
            "outbox_pending": s.metrics.outbox_pending.get(),
        })),
    )
        .into_response()
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
