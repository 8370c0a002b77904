//! The router and its shared state.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::{delete, get, post};
use axum::Router;
use fred::prelude::*;
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimits;
use crate::{accounts, chats, health, hubtokens, media, messages, openapi, proxy};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: PgPool,
    /// The membership and display-name caches; PostgreSQL answers when it is down.
    pub redis: fred::clients::Client,
    /// Sends (acks=all, idempotent) and the outbox relay.
    pub producer: FutureProducer,
    /// The history table the sink writes.
    pub history: Arc<chorus_sink::dynamo::Store>,
    pub hub: Arc<crate::hubapi::HubApi>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<RateLimits>,
    /// Woken after a commit that wrote outbox rows, so the relay publishes at once.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Monotonic within this process: two sends in one millisecond keep their order.
    pub ulids: Arc<parking_lot::Mutex<ulid::Generator>>,
    /// The state-event consumer's health, for `/health`.
    pub reactor: Arc<crate::reactor::ReactorStatus>,
    /// Uploaded blobs.
    pub media: chorus_transcriber::store::Blobs,
}

/// Bodies over this are refused before they are read.
const MAX_BODY_BYTES: usize = 64 * 1024;

impl AppState {
    /// Connects to PostgreSQL (and migrates); Redis, Kafka and DynamoDB clients connect in
    /// the background and are reported by `/health` until they do.
    pub async fn connect(config: Config) -> anyhow::Result<AppState> {
        let db = crate::db::connect(&config.database_url)
            .await
            .context("connecting to PostgreSQL")?;
        let redis = redis_client(&config.redis)?;
        let producer = crate::kafka::producer(&config.kafka)?;
        let history = Arc::new(chorus_sink::dynamo::Store::new(&config.dynamodb).await);
        let hub = Arc::new(crate::hubapi::HubApi::new(&config.hub)?);
        let limits = Arc::new(RateLimits::new(&config.limits));
        let media = crate::media::store(&config.media)
            .with_context(|| format!("media.path {:?}", config.media.path))?;
        Ok(AppState {
            config: Arc::new(config),
            db,
            redis,
            producer,
            history,
            hub,
            metrics: Arc::new(Metrics::new()),
            limits,
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            ulids: Arc::new(parking_lot::Mutex::new(ulid::Generator::new())),
            reactor: Default::default(),
            media,
        })
    }

    pub fn ulid(&self) -> String {
        let mut g = self.ulids.lock();
        // The generator only fails when 80 random bits overflow within one millisecond.
        g.generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_string()
    }
}

fn redis_client(c: &crate::config::Redis) -> anyhow::Result<fred::clients::Client> {
    let config = fred::types::config::Config::from_url(&c.url).with_context(|| {
        format!(
            "redis.url {:?}",
            chorus_protocol::secret::redact_url(&c.url)
        )
    })?;
    let timeout = Duration::from_millis(c.timeout_ms);
    let client = Builder::from_config(config)
        .with_performance_config(|p| p.default_command_timeout = timeout)
        .with_connection_config(|k| {
            k.connection_timeout = timeout;
            k.internal_command_timeout = timeout;
            k.max_command_attempts = 1;
        })
        // Reconnects forever in the background; until then the cache is skipped.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build()?;
    client.connect();
    Ok(client)
}

pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/auth/register", post(accounts::register))
        .route("/auth/login", post(accounts::login))
        .route("/auth/refresh", post(accounts::refresh))
        .route("/auth/logout", post(accounts::logout))
        .route("/me", get(accounts::me))
        .route("/hub/connection-token", post(hubtokens::connection))
        .route("/hub/subscribe", post(proxy::subscribe))
        .route("/chats", post(chats::create).get(chats::list))
        .route(
            "/chats/{id}",
            get(chats::get).patch(chats::rename).delete(chats::remove),
        )
        .route("/chats/{id}/members", post(chats::add_member))
        .route(
            "/chats/{id}/members/{user_id}",
            delete(chats::remove_member).patch(chats::set_role),
        )
        .route("/chats/{id}/leave", post(chats::leave))
        .route(
            "/chats/{id}/subscription-token",
            post(hubtokens::subscription),
        )
        .route(
            "/chats/{id}/messages",
            post(messages::send).get(messages::history),
        )
        .route(
            "/chats/{id}/images",
            // Multipart bodies up to the image limit plus the form's own overhead.
            post(media::upload_image).layer(axum::extract::DefaultBodyLimit::max(
                state.config.media.max_image_bytes + 64 * 1024,
            )),
        )
        .route(
            "/chats/{id}/voice",
            post(media::upload_voice).layer(axum::extract::DefaultBodyLimit::max(
                state.config.media.max_voice_bytes + 64 * 1024,
            )),
        )
        .route("/media/{*key}", get(media::read))
        .route("/openapi.json", get(openapi::document))
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { crate::error::ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { crate::error::ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    api.layer(axum::middleware::from_fn(crate::unread::close_if_unread))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}
