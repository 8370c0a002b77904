//! One Kafka consumer: reads its topics' partitions in order and hands each record to the
//! hub's broker before storing its offset.
//!
//! - **Assignment.** With the embedded engine every node must see every record, so a node
//!   assigns itself every partition of its topics (found and re-checked every second) and
//!   keeps its position in `consumer_group`'s committed offsets ([`assign`]). With the Redis
//!   engine the nodes share `consumer_group`: each partition is read by one node, dealt
//!   round the live nodes that run the same group (the cluster's heartbeats), and published
//!   through Redis to every node, so a cluster reads its topics once. A partition that moves (a node joins, or is killed and leaves the cluster's node
//!   list) resumes from the committed offset; a record the previous owner had already
//!   published is dropped by its position in the stream (`broker/lua/publish.lua`), so it is
//!   neither skipped nor repeated, even while two nodes briefly read it. Chorus assigns the
//!   partitions itself instead of joining a Kafka group: the same rule on every broker, and
//!   no broker's group coordinator to trust with a dead member.
//! - **At least once.** An offset is stored only after its record was published (or
//!   dead-lettered); librdkafka commits stored offsets every 100 ms and at shutdown. A record
//!   read twice is published once: by idempotency key, and for chat events by position
//!   ([`records`]).
//! - **Replay.** In chat-event mode on the embedded engine, a starting node re-reads up to
//!   `replay_records` records before the committed offset into history only, so clients
//!   recover across its restart (the Redis engine keeps history in Redis instead).
//! - **Failures.** A record that cannot be used goes to the dead-letter topic (through
//!   `chorus_runtime::kafka::dlq`) and the partition goes on. A publish that fails for a
//!   passing reason, and an unreachable broker, are retried with backoff, reported in
//!   `/health` and in metrics.
//!
//! | module | concept |
//! |---|---|
//! | [`client`] | the librdkafka settings of this consumer and its dead-letter producer |
//! | [`assign`] | finding partitions, assigning them from the committed offset (or before it, to replay), lag |
//! | [`records`] | the record loop: apply, retry, dead-letter, store the offset |

mod assign;
mod client;
mod records;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chorus_runtime::kafka::dlq::DeadLetters;
use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use tokio::sync::watch;

use super::record::Mode;
use super::status::Status;
use crate::config::consumers::Consumer;
use crate::node::Node;

const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// librdkafka reports client-level errors (all brokers down, ...) here.
struct Context {
    name: String,
    status: Arc<Status>,
    up: prometheus::IntGauge,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(consumer = %self.name, %error, reason, "kafka client error");
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.up.set(0);
            self.status
                .set("broker_unreachable", Some(format!("{error}: {reason}")));
        }
    }
}

impl ConsumerContext for Context {}

/// Where this run reads a partition from.
#[derive(Clone)]
struct Part {
    /// The first offset this run reads.
    start: i64,
    /// Offsets below this were delivered by an earlier run (the committed offset).
    replay_until: i64,
}

struct Shared {
    name: String,
    node: Arc<Node>,
    cfg: Consumer,
    mode: Mode,
    consumer: StreamConsumer<Context>,
    dead_letters: DeadLetters,
    status: Arc<Status>,
    /// Assigned partitions by topic, then partition.
    parts: Mutex<HashMap<String, HashMap<i32, Part>>>,
    /// The nodes share the consumer group (the Redis engine) instead of each reading all.
    shared_group: bool,
    /// In chat-event mode, the epoch of every chat stream (the topic's; there is one topic).
    chat_epoch: Option<String>,
}

/// A running consumer: `ready` turns true once the startup replay is done, or once it is
/// clear the broker cannot be reached (the hub serves anyway, degraded).
pub struct Running {
    pub ready: watch::Receiver<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

/// A stable epoch for a topic's streams, the same on every node and every run.
fn source_epoch(topic: &str) -> String {
    // FNV-1a: stable across builds, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("k{:011x}", h >> 20)
}

pub fn spawn(node: Arc<Node>, cfg: Consumer, status: Arc<Status>) -> anyhow::Result<Running> {
    let context = Context {
        name: cfg.name.clone(),
        status: status.clone(),
        up: node.metrics.consumer_up.with_label_values(&[&cfg.name]),
    };
    // Every outcome and failure kind at 0 from the start, so a dashboard reads 0, not nothing.
    for outcome in ["published", "replayed", "ignored", "dead_lettered"] {
        node.metrics
            .consumer_records
            .with_label_values(&[&cfg.name, outcome]);
    }
    for kind in ["broker", "publish", "dead_letter"] {
        node.metrics
            .consumer_failures
            .with_label_values(&[&cfg.name, kind]);
    }
    let consumer: StreamConsumer<Context> =
        client::consumer_config(&cfg).create_with_context(context)?;
    let dead_letters = DeadLetters::new(&client::client_config(&cfg), cfg.name.clone())?;
    let mode = Mode::of(&cfg.kafka);
    let chat_epoch = match (&mode, cfg.kafka.topics.as_slice()) {
        (Mode::ChatEvents, [topic]) => Some(source_epoch(topic)),
        _ => None,
    };
    if let Some(epoch) = &chat_epoch {
        node.broker
            .declare_source(chorus_protocol::event::CHAT_CHANNEL_PREFIX, epoch);
    }
    let shared_group = node.config.engine.is_redis();
    let shared = Arc::new(Shared {
        shared_group,
        name: cfg.name.clone(),
        mode,
        chat_epoch,
        node,
        cfg,
        consumer,
        dead_letters,
        status,
        parts: Mutex::new(HashMap::new()),
    });
    let (ready_tx, ready) = watch::channel(false);
    tokio::spawn(assign::watch_partitions(shared.clone(), ready_tx));
    let task = tokio::spawn(records::consume(shared));
    Ok(Running { ready, task })
}

/// The same backoff every retry of a consumer uses: from 50 ms up to 5 s, with jitter, until
/// the node shuts down.
fn retry_backoff() -> chorus_runtime::backoff::Backoff {
    chorus_runtime::backoff::Backoff::new(BACKOFF_MIN, BACKOFF_MAX)
}

fn fail(s: &Shared, kind: &str) {
    s.node
        .metrics
        .consumer_failures
        .with_label_values(&[&s.name, kind])
        .inc();
}

fn count(s: &Shared, outcome: &str) {
    s.node
        .metrics
        .consumer_records
        .with_label_values(&[&s.name, outcome])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_epochs_are_stable_and_distinct() {
        assert_eq!(source_epoch("chat"), source_epoch("chat"));
        assert_ne!(source_epoch("chat"), source_epoch("chats"));
        assert_eq!(source_epoch("chat").len(), 12);
    }
}
