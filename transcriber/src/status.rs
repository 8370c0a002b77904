//! What `/health` reports, and the `/health` and `/metrics` endpoints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use serde_json::json;

use crate::metrics::Metrics;

#[derive(Default)]
pub struct Status {
    pub metrics: Metrics,
    stopping: AtomicBool,
    kafka_up: AtomicBool,
    /// The last step that failed and is being retried, until one succeeds.
    trouble: Mutex<Option<String>>,
}

impl Status {
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn kafka(&self, up: bool) {
        self.kafka_up.store(up, Ordering::Relaxed);
        self.metrics.kafka_up.set(i64::from(up));
    }

    pub fn trouble(&self, what: Option<String>) {
        *self.trouble.lock() = what;
    }

    /// 200 while serving (`ok`, or `degraded` while a step is retried: jobs wait, none is
    /// lost), 503 while shutting down.
    pub fn health(&self) -> (bool, serde_json::Value) {
        let trouble = self.trouble.lock().clone();
        let kafka = self.kafka_up.load(Ordering::Relaxed);
        let status = if self.stopping.load(Ordering::Relaxed) {
            "shutting_down"
        } else if kafka && trouble.is_none() {
            "ok"
        } else {
            "degraded"
        };
        let mut body = json!({ "status": status, "kafka": { "up": kafka } });
        if let Some(t) = trouble {
            body["retrying"] = json!(t);
        }
        (status != "shutting_down", body)
    }
}

pub fn app(status: Arc<Status>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(status)
}

async fn health(State(status): State<Arc<Status>>) -> Response {
    let (serving, body) = status.health();
    let code = if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics(State(status): State<Arc<Status>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        status.metrics.render(),
    )
        .into_response()
}
