//! Reading the chat topic in the sink's consumer group.
//!
//! - **Group.** The sink subscribes, so several sinks share the partitions and a dead one's
//!   partitions move to the others. Offsets are committed by hand, only after a flush is
//!   durable (see [`crate::pipeline`]); `auto.offset.reset=earliest` so a new group stores
//!   everything the topic holds.
//! - **Backpressure.** Records go to the writer through a channel of `batch.max_pending`;
//!   when it is full the reader stops reading, and librdkafka stops fetching once its
//!   `queued_max_kbytes` prefetch is full. Memory stays bounded however long DynamoDB is down.
//! - **Rebalance.** A revoked partition's generation moves on, so the writer drops what it
//!   holds of it instead of writing it late, after its new owner has written newer changes;
//!   the new owner reads it again from the committed offset. A call already in flight at the
//!   revoke can still land after the new owner's write of the same item (a window of one
//!   call, at most `dynamodb.attempt_timeout_ms`); the group's rebalance takes longer than
//!   that in practice, but it is not fenced.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::status::Status;
use chorus_history::model::{change_of, Change, Key, Unstorable};

/// One record as the writer needs it: where it came from and what it does.
pub struct Record {
    pub source: Source,
    /// `Ok(None)`: a chat-level event, nothing to store.
    pub change: Result<Option<(Key, Change)>, Unstorable>,
}

/// A record as read, kept for the dead-letter topic.
pub struct Source {
    pub partition: i32,
    pub offset: i64,
    /// The partition's assignment generation when the record was read.
    pub generation: u64,
    /// When it was read: a flush waits for more records only until its first record has
    /// waited `batch.flush_interval_ms`.
    pub read_at: tokio::time::Instant,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    fn read(m: &BorrowedMessage<'_>, generation: u64) -> Record {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Record {
            source: Source {
                partition: m.partition(),
                offset: m.offset(),
                generation,
                read_at: tokio::time::Instant::now(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(<[u8]>::to_vec),
                headers,
            },
            change: change_of(m.payload().unwrap_or_default()),
        }
    }
}

/// Assignment generations by partition: bumped when a partition is revoked.
#[derive(Default)]
pub struct Generations(Mutex<HashMap<i32, u64>>);

impl Generations {
    pub fn of(&self, partition: i32) -> u64 {
        self.0.lock().get(&partition).copied().unwrap_or(0)
    }

    fn revoke(&self, partition: i32) {
        *self.0.lock().entry(partition).or_default() += 1;
    }
}

pub struct Context {
    status: Arc<Status>,
    pub generations: Generations,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        if matches!(
            error.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.status.kafka(false);
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(parts) = rebalance {
            for p in parts.elements() {
                self.generations.revoke(p.partition());
            }
            tracing::info!(partitions = parts.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(parts) = rebalance {
            let ids: Vec<i32> = parts.elements().iter().map(|p| p.partition()).collect();
            tracing::info!(?ids, "partitions assigned");
        }
    }
}

pub type Kafka = StreamConsumer<Context>;

/// Settings every client of the sink shares.
pub fn client_config(cfg: &Config) -> ClientConfig {
    chorus_runtime::kafka::client(&cfg.kafka.brokers, "chorus-sink")
}

pub fn create(cfg: &Config, status: Arc<Status>) -> anyhow::Result<Arc<Kafka>> {
    let mut c = client_config(cfg);
    c.set("group.id", &cfg.kafka.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set(
            "queued.max.messages.kbytes",
            cfg.kafka.queued_max_kbytes.to_string(),
        );
    chorus_runtime::kafka::static_member(&mut c, &cfg.kafka.instance_id);
    chorus_runtime::kafka::passthrough(&mut c, &cfg.kafka.librdkafka);
    let consumer: Kafka = c.create_with_context(Context {
        status,
        generations: Generations::default(),
    })?;
    consumer.subscribe(&[&cfg.kafka.topic])?;
    Ok(Arc::new(consumer))
}

/// Reads records into `out` until `stop` fires; dropping `out` tells the writer to finish.
pub async fn read(
    consumer: Arc<Kafka>,
    out: mpsc::Sender<Record>,
    status: Arc<Status>,
    stop: CancellationToken,
) {
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => break,
            m = consumer.recv() => m,
        };
        let record = match m {
            Ok(m) => Record::read(&m, consumer.context().generations.of(m.partition())),
            Err(e) => {
                tracing::warn!(error = %e, "kafka read error");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                }
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            sent = out.send(record) => if sent.is_err() { break },
        }
        status.set_queued(out.max_capacity() - out.capacity());
    }
    tracing::info!("stopped reading");
}

/// The offsets to commit for records up to these (partition, last offset) pairs.
pub fn commit_list(topic: &str, last: &HashMap<i32, i64>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in last {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
            .expect("invariant: a plain offset is valid");
    }
    tpl
}
