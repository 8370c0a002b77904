//! The connections to the Redis every node shares with the Redis engine: a command pool that
//! the broker and the presence manager both use, and the one PUB/SUB connection that brings
//! this node the channels its clients are subscribed to. Its own file, so the engine's
//! halves (`broker/redis.rs`, `presence/redis.rs`) and the engine that builds them
//! (`engine.rs`) each depend on it and not on each other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fred::clients::SubscriberClient;
use fred::prelude::*;

/// Connections to the Redis every node shares.
pub struct RedisLink {
    /// Commands and scripts; fred pipelines concurrent commands on each connection.
    pub pool: Pool,
    /// The node's one PUB/SUB connection, whatever the number of channels.
    pub subscriber: SubscriberClient,
    pub prefix: String,
    up: AtomicBool,
}

/// Commands in flight on a few connections: fred pipelines each, and more than the cores
/// buys nothing.
const POOL_SIZE: usize = 2;
/// Messages the PUB/SUB reader may fall behind by before it counts them as lost.
const PUBSUB_BUFFER: usize = 1 << 16;
/// How long a starting node waits for Redis before giving up with an error.
const STARTUP_WAIT: Duration = Duration::from_secs(10);

use chorus_protocol::secret::redact_url;

impl RedisLink {
    pub async fn connect(config: &crate::config::Redis) -> anyhow::Result<Arc<RedisLink>> {
        let redis_config = fred::types::config::Config::from_url(&config.address)
            .with_context(|| format!("engine.redis.address {:?}", redact_url(&config.address)))?;
        let mut builder = Builder::from_config(redis_config);
        builder
            .with_performance_config(|p| {
                p.default_command_timeout = config.io_timeout.0;
                p.broadcast_channel_capacity = PUBSUB_BUFFER;
            })
            .with_connection_config(|c| {
                c.connection_timeout = config.connect_timeout.0;
                c.internal_command_timeout = config.io_timeout.0;
                // A command is tried once more after a reconnect, then fails to its caller.
                c.max_command_attempts = 2;
            })
            // Retried forever: a node outlives a Redis restart. 0 = no attempt limit.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let pool = builder.build_pool(POOL_SIZE)?;
        let subscriber = builder.build_subscriber_client()?;
        let connect = async {
            pool.init().await?;
            subscriber.init().await?;
            Ok::<_, fred::error::Error>(())
        };
        match tokio::time::timeout(STARTUP_WAIT, connect).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                anyhow::bail!("redis at {} unreachable: {e}", redact_url(&config.address))
            }
            Err(_) => anyhow::bail!(
                "redis at {} unreachable for {}s",
                redact_url(&config.address),
                STARTUP_WAIT.as_secs()
            ),
        }
        Ok(Arc::new(RedisLink {
            pool,
            subscriber,
            prefix: config.prefix.clone(),
            up: AtomicBool::new(true),
        }))
    }

    /// `<prefix>.<kind>.<name>`: every key and PUB/SUB channel of this installation.
    pub fn key(&self, kind: &str, name: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + kind.len() + name.len() + 2);
        k.push_str(&self.prefix);
        k.push('.');
        k.push_str(kind);
        k.push('.');
        k.push_str(name);
        k
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Keeps `is_up` current: both connections must be connected.
    pub fn watch(self: &Arc<Self>, metrics: Arc<crate::metrics::Metrics>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let Some(link) = weak.upgrade() else { return };
                let up = link.subscriber.is_connected() && link.pool.next().is_connected();
                if link.up.swap(up, Ordering::Relaxed) != up {
                    if up {
                        tracing::info!("redis reachable again");
                    } else {
                        tracing::warn!("redis unreachable; retrying with backoff");
                    }
                }
                metrics.redis_up.set(i64::from(up));
            }
        });
    }
}

/// A Redis reply value as text (scripts answer strings, numbers or bulk bytes).
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}
