//! PUB/SUB and history: the cross-node seam.
//!
//! A [`Broker`] stores a channel's publication stream (offset + epoch) and delivers each
//! publication, join and leave to the [`BrokerEventHandler`] of every node, in offset order
//! per channel. [`memory::MemoryBroker`] is the embedded single-node engine;
//! [`redis::RedisBroker`] implements the same trait for many nodes sharing one Redis.

pub mod memory;
pub mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chorus_protocol::frame::{ClientInfo, Publication, StreamPosition};

pub use memory::MemoryBroker;
pub use redis::RedisBroker;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The requested position is from another epoch or older than history keeps.
    #[error("unrecoverable position")]
    Unrecoverable,
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The channel's stream is positioned by its source (a Kafka topic): publish there.
    #[error("channel is fed by its source only")]
    SourceOnly,
}

/// How a publication is stored.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Keep this many publications; 0 disables history (no offsets).
    pub history_size: usize,
    pub history_ttl: Duration,
    /// How long an idle stream keeps its epoch and top offset.
    pub history_meta_ttl: Duration,
    /// Publishing the same key to the same channel again within the window is a no-op
    /// that returns the first result.
    pub idempotency_key: Option<String>,
    /// Set when the stream's positions come from its source (a Kafka partition) rather than
    /// from the broker; see [`SourcePosition`].
    pub source: Option<SourcePosition>,
    /// Delta subscribers get this publication as a delta even where the namespace has no
    /// `delta_publish` (the server API's `delta` flag). Carried to every node with it.
    pub delta: bool,
}

/// A publication's place in a stream whose positions its source assigns.
///
/// A chat channel fed from one Kafka partition takes that partition's identity as its epoch
/// and the record's offset + 1 as its offset. Positions then survive a hub restart: the
/// restarted hub re-reads the recent records into history and a returning client recovers
/// from where it was. Offsets are increasing but not dense, so "no gap" is judged by
/// `complete_after` rather than by consecutive offsets. The epoch is the topic's, known
/// before a channel's first record, so a client that subscribed early holds the right one.
#[derive(Debug, Clone)]
pub struct SourcePosition {
    /// The source's identity (a topic), declared beforehand with [`Broker::declare_source`].
    pub epoch: String,
    /// Which lane of the source (a partition) the stream comes from: offsets of different
    /// lanes are unrelated, so a stream that changes lane starts a new epoch.
    pub lane: i32,
    pub offset: u64,
    /// The stream holds every publication with an offset above this one (the point where
    /// this run started reading its source).
    pub complete_after: u64,
    /// False for records an earlier run already delivered: they go into history only.
    pub deliver: bool,
}

/// Channel prefixes whose streams a source positions, each with the source's epoch (what
/// [`Broker::declare_source`] records, for both engines).
#[derive(Default)]
pub struct SourceEpochs(parking_lot::RwLock<Vec<(String, String)>>);

impl SourceEpochs {
    pub fn declare(&self, prefix: &str, epoch: &str) {
        let mut sources = self.0.write();
        sources.retain(|(p, _)| p != prefix);
        sources.push((prefix.to_owned(), epoch.to_owned()));
    }

    /// The declared epoch of the source feeding `channel`, if one does.
    pub fn epoch_for(&self, channel: &str) -> Option<String> {
        self.0
            .read()
            .iter()
            .find(|(prefix, _)| channel.starts_with(prefix.as_str()))
            .map(|(_, epoch)| epoch.clone())
    }
}

/// Which part of a stream to read.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Publications after this position; its epoch must match.
    pub since: Option<StreamPosition>,
    /// At most this many; `Some(0)` asks only for the current position, `None` for all.
    pub limit: Option<usize>,
    pub reverse: bool,
}

#[derive(Debug, Default)]
pub struct HistoryPage {
    pub publications: Vec<Arc<Publication>>,
    /// The stream's top: last offset and current epoch.
    pub position: StreamPosition,
}

/// What a node does with what the broker delivers.
pub trait BrokerEventHandler: Send + Sync + 'static {
    /// `prev` is the stream's offset before this publication and `epoch` its epoch, so a
    /// node can tell a subscriber that missed one (a lost PUB/SUB message, a Redis that
    /// restarted empty) from one that did not; both are 0 and "" without history.
    /// `delta`: the publisher asked for delta delivery (see [`PublishOptions::delta`]).
    fn on_publication(
        &self,
        channel: &str,
        publication: &Arc<Publication>,
        prev: u64,
        epoch: &str,
        delta: bool,
    );
    fn on_join(&self, channel: &str, info: &ClientInfo);
    fn on_leave(&self, channel: &str, info: &ClientInfo);
    /// A message another node sent with [`Broker::publish_control`].
    fn on_control(&self, _data: &str) {}
    /// The broker's PUB/SUB link came back after a break: anything published meanwhile
    /// was not delivered here, so positions must be checked.
    fn on_resubscribed(&self) {}
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Starts delivering events to `handler`; called once, before any publish.
    fn run(&self, handler: Arc<dyn BrokerEventHandler>);

    /// Appends to history (when enabled) and delivers; returns the stream position given.
    async fn publish(
        &self,
        channel: &str,
        data: chorus_protocol::frame::Data,
        info: Option<ClientInfo>,
        tags: Option<BTreeMap<String, String>>,
        opts: &PublishOptions,
    ) -> Result<StreamPosition, BrokerError>;

    async fn publish_join(&self, channel: &str, info: &ClientInfo) -> Result<(), BrokerError>;
    async fn publish_leave(&self, channel: &str, info: &ClientInfo) -> Result<(), BrokerError>;

    /// Reads history; the position is returned even for a channel never published to.
    async fn history(
        &self,
        channel: &str,
        filter: &HistoryFilter,
        meta_ttl: Duration,
    ) -> Result<HistoryPage, BrokerError>;

    /// Streams of channels starting with `prefix` are positioned by a source (see
    /// [`SourcePosition`]); one asked about before its first record gets `epoch`.
    fn declare_source(&self, prefix: &str, epoch: &str);

    /// Drops the publications but keeps the position, so subscribers are not forced to resync.
    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError>;

    /// Starts receiving a channel's events on this node; idempotent. A node calls it before
    /// reading a new subscriber's position, so nothing falls between the two. The embedded
    /// engine delivers every channel to its one node and needs nothing.
    async fn subscribe(&self, _channel: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    /// Stops receiving a channel's events on this node; idempotent.
    async fn unsubscribe(&self, _channel: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    /// Starts receiving control messages: those to every node and those to `node_uid`.
    async fn listen_control(&self, _node_uid: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    /// Sends a control message to every other node (or only `to`, a node uid); the
    /// embedded engine has no other node.
    async fn publish_control(&self, _data: &str, _to: Option<&str>) -> Result<(), BrokerError> {
        Ok(())
    }

    /// False while the engine's backing service is unreachable.
    fn is_up(&self) -> bool {
        true
    }
}
