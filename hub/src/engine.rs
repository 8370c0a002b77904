//! The engine: a [`Broker`], a [`PresenceManager`] and the token invalidations ([`Revoked`])
//! picked by `engine.type`.
//!
//! `memory` keeps both in this process (one node). `redis` shares them among every node
//! through Redis (one server, several shards, a Redis Cluster or a Sentinel-watched master):
//! a [`RedisLink`] (`redis_link.rs`) holds, per shard, the command pool both use and the one
//! PUB/SUB connection that brings this node the channels its clients are subscribed to.

use std::sync::Arc;

use crate::broker::{Broker, RedisBroker};
use crate::config::Config;
use crate::presence::{PresenceManager, RedisPresence};
pub use crate::redis_link::RedisLink;
use crate::revoked::{RedisRevoked, Revoked};

/// The engine's two halves, ready for [`crate::node::NodeParts`].
pub struct Engine {
    pub broker: Option<Arc<dyn Broker>>,
    pub presence: Option<Arc<dyn PresenceManager>>,
    pub revoked: Option<Arc<dyn Revoked>>,
    pub link: Option<Arc<RedisLink>>,
}

/// Builds the configured engine; `memory` leaves both to the node's defaults.
pub async fn build(config: &Config) -> anyhow::Result<Engine> {
    if !config.engine.is_redis() {
        return Ok(Engine {
            broker: None,
            presence: None,
            revoked: None,
            link: None,
        });
    }
    let link = RedisLink::connect(&config.engine.redis).await?;
    Ok(Engine {
        broker: Some(Arc::new(RedisBroker::new(link.clone()))),
        presence: Some(RedisPresence::new(
            link.clone(),
            config.engine.redis.presence_ttl.0,
            config.client.presence_update_interval.0,
        )),
        revoked: Some(Arc::new(RedisRevoked::new(link.clone()))),
        link: Some(link),
    })
}
