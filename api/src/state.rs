//! The state every handler shares: the pools and clients a request needs, built once at
//! startup. Its own file, so handlers depend on it and the router (`app.rs`) depends on the
//! handlers, with no circle between them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chorus_media::store::Blobs;
use fred::prelude::*;
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimits;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: PgPool,
    /// The membership and display-name caches; PostgreSQL answers when it is down.
    pub redis: fred::clients::Client,
    /// Sends (acks=all, idempotent) and the outbox relay.
    pub producer: FutureProducer,
    /// The history table the sink writes.
    pub history: Arc<chorus_history::Store>,
    pub hub: Arc<crate::hub::api::HubApi>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<RateLimits>,
    /// Woken after a commit that wrote outbox rows, so the relay publishes at once.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Monotonic within this process: two sends in one millisecond keep their order.
    pub ulids: Arc<parking_lot::Mutex<ulid::Generator>>,
    /// The state-event consumer's health, for `/health`.
    pub reactor: Arc<crate::outbox::reactor_status::ReactorStatus>,
    /// Uploaded blobs.
    pub media: Blobs,
}

impl AppState {
    /// Connects to PostgreSQL (and migrates); Redis, Kafka and DynamoDB clients connect in
    /// the background and are reported by `/health` until they do.
    pub async fn connect(config: Config) -> anyhow::Result<AppState> {
        let db = crate::db::connect(&config.database_url)
            .await
            .context("connecting to PostgreSQL")?;
        let redis = redis_client(&config.redis)?;
        let producer = crate::kafka::producer(&config.kafka)?;
        let history = Arc::new(chorus_history::Store::new(&config.dynamodb).await);
        let hub = Arc::new(crate::hub::api::HubApi::new(&config.hub)?);
        let limits = Arc::new(RateLimits::new(&config.limits));
        let media = Blobs::open(std::path::Path::new(&config.media.path), &config.media.s3)
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
