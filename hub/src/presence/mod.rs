//! Who is in a channel: the cross-node presence seam.
//!
//! [`memory::MemoryPresence`] serves a single node; [`redis::RedisPresence`] serves many.

pub mod memory;
pub mod redis;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chorus_protocol::frame::ClientInfo;

pub use memory::MemoryPresence;
pub use redis::RedisPresence;

#[derive(Debug, thiserror::Error)]
#[error("presence unavailable: {0}")]
pub struct PresenceError(pub String);

#[async_trait]
pub trait PresenceManager: Send + Sync + 'static {
    async fn add(&self, channel: &str, info: &ClientInfo) -> Result<(), PresenceError>;
    async fn remove(&self, channel: &str, client: &str) -> Result<(), PresenceError>;
    /// Everyone present, by client id.
    async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, PresenceError>;
    /// (clients, unique users).
    async fn stats(&self, channel: &str) -> Result<(u32, u32), PresenceError>;
}
