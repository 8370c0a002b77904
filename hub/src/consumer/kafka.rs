//! One Kafka consumer: reads its topics' partitions in order and hands each record to the
//! hub's broker before storing its offset.
//!
//! - **Assignment.** With the embedded engine every node must see every record, so a node
//!   assigns itself every partition of its topics (found and re-checked every second) and
//!   keeps its position in `consumer_group`'s committed offsets.
//! - **At least once.** An offset is stored only after its record was published (or
//!   dead-lettered); librdkafka commits stored offsets every 100 ms and at shutdown. A record
//!   read twice is published once: by idempotency key, and for chat events by position.
//! - **Replay.** In chat-event mode, a starting node re-reads up to `replay_records` records
//!   before the committed offset into history only, so clients recover across its restart.
//! - **Failures.** A record that cannot be used goes to the dead-letter topic and the
//!   partition goes on. A publish that fails for a passing reason, and an unreachable broker,
//!   are retried with backoff, reported in `/health` and in metrics.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_protocol::codes::ProtocolError;
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::record::{decode, Action, Mode, Publish, Record};
use super::status::Status;
use crate::api::ApiError;
use crate::broker::SourcePosition;
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
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    status: Arc<Status>,
    /// Assigned partitions by topic, then partition.
    parts: Mutex<HashMap<String, HashMap<i32, Part>>>,
    /// In chat-event mode, the epoch of every chat stream (the topic's; there is one topic).
    chat_epoch: Option<String>,
    dlq_topics: Mutex<HashSet<String>>,
}

/// A running consumer: `ready` turns true once the startup replay is done, or once it is
/// clear the broker cannot be reached (the hub serves anyway, degraded).
pub struct Running {
    pub ready: watch::Receiver<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

fn client_config(cfg: &Consumer) -> ClientConfig {
    let k = &cfg.kafka;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", k.brokers.join(","))
        .set("client.id", format!("chorus-hub-{}", cfg.name))
        .set("socket.nagle.disable", "true")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "5000");
    if k.sasl_mechanism.eq_ignore_ascii_case("plain") {
        c.set("security.protocol", "sasl_plaintext")
            .set("sasl.mechanisms", "PLAIN")
            .set("sasl.username", &k.sasl_user)
            .set("sasl.password", &k.sasl_password);
    }
    c
}

fn consumer_config(cfg: &Consumer) -> ClientConfig {
    let k = &cfg.kafka;
    let mut c = client_config(cfg);
    c.set("group.id", &k.consumer_group)
        .set("enable.auto.commit", "true")
        // Offsets are stored by hand, after the record was handed to the hub's broker.
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "100")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // The defaults wait up to 500 ms for a fetch to fill; a chat wants each record now.
        .set(
            "fetch.wait.max.ms",
            k.fetch_max_wait.0.as_millis().max(1).to_string(),
        )
        .set("fetch.min.bytes", "1")
        .set("fetch.error.backoff.ms", "50");
    if k.fetch_max_bytes > 0 {
        c.set("fetch.max.bytes", k.fetch_max_bytes.to_string());
    }
    for (key, value) in &k.librdkafka {
        c.set(key, value);
    }
    c
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
    let consumer: StreamConsumer<Context> = consumer_config(&cfg).create_with_context(context)?;
    let mut producer_config = client_config(&cfg);
    producer_config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0");
    let producer: FutureProducer = producer_config.create()?;
    let admin: AdminClient<DefaultClientContext> = client_config(&cfg).create()?;
    let mode = Mode::of(&cfg.kafka);
    let chat_epoch = match (&mode, cfg.kafka.topics.as_slice()) {
        (Mode::ChatEvents, [topic]) => Some(source_epoch(topic)),
        _ => None,
    };
    if let Some(epoch) = &chat_epoch {
        let prefix = format!("{}:", chorus_protocol::event::CHAT_NAMESPACE);
        node.broker.declare_source(&prefix, epoch);
    }
    let shared = Arc::new(Shared {
        name: cfg.name.clone(),
        mode,
        chat_epoch,
        node,
        cfg,
        consumer,
        producer,
        admin,
        status,
        parts: Mutex::new(HashMap::new()),
        dlq_topics: Mutex::new(HashSet::new()),
    });
    let (ready_tx, ready) = watch::channel(false);
    tokio::spawn(watch_partitions(shared.clone(), ready_tx));
    let task = tokio::spawn(consume(shared));
    Ok(Running { ready, task })
}

/// Finds partitions (new topics, added partitions), assigns them, and reports lag and
/// reachability; every second, or every 100 ms while the startup replay runs.
async fn watch_partitions(shared: Arc<Shared>, ready: watch::Sender<bool>) {
    let up = shared
        .node
        .metrics
        .consumer_up
        .with_label_values(&[&shared.name]);
    loop {
        let s = shared.clone();
        let outcome = tokio::task::spawn_blocking(move || refresh(&s)).await;
        let replaying = match outcome {
            Ok(Ok(replaying)) => {
                up.set(1);
                shared.status.reachable(replaying);
                replaying
            }
            Ok(Err(e)) => {
                up.set(0);
                fail(&shared, "broker");
                tracing::warn!(consumer = %shared.name, error = %e, "kafka unreachable; retrying");
                shared.status.set("broker_unreachable", Some(e.to_string()));
                false
            }
            Err(_) => return, // runtime shutting down
        };
        if !replaying {
            ready.send_replace(true);
        }
        let pause = if replaying {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = shared.node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

fn offset_value(o: Offset) -> Option<i64> {
    match o {
        Offset::Offset(n) => Some(n),
        _ => None,
    }
}

/// One pass of [`watch_partitions`]; returns whether the startup replay is still running.
fn refresh(s: &Shared) -> Result<bool, KafkaError> {
    let mut new = TopicPartitionList::new();
    for topic in &s.cfg.kafka.topics {
        let md = s.consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        let parts = s.parts.lock();
        for t in md.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                if !parts
                    .get(t.name())
                    .is_some_and(|ps| ps.contains_key(&p.id()))
                {
                    new.add_partition(t.name(), p.id());
                }
            }
        }
    }
    if new.count() > 0 {
        assign(s, &new)?;
    }
    let positions = s.consumer.position()?;
    let parts = s.parts.lock().clone();
    let mut total_lag = 0;
    let mut replaying = false;
    let assigned = parts
        .iter()
        .flat_map(|(topic, ps)| ps.iter().map(move |(p, part)| (topic, p, part)));
    for (topic, partition, part) in assigned {
        let (_, high) = s
            .consumer
            .fetch_watermarks(topic, *partition, METADATA_TIMEOUT)?;
        let position = positions
            .find_partition(topic, *partition)
            .and_then(|e| offset_value(e.offset()))
            .unwrap_or(part.start);
        let lag = (high - position).max(0);
        total_lag += lag;
        replaying |= position < part.replay_until;
        s.node
            .metrics
            .consumer_lag
            .with_label_values(&[&s.name, topic, &partition.to_string()])
            .set(lag);
    }
    s.status.set_lag(total_lag);
    Ok(replaying)
}

/// Starts reading new partitions: from the committed offset, or up to `replay_records`
/// before it in chat-event mode; from the earliest record for a group that never committed.
fn assign(s: &Shared, new: &TopicPartitionList) -> Result<(), KafkaError> {
    let committed = s
        .consumer
        .committed_offsets(new.clone(), METADATA_TIMEOUT)?;
    let replay = if matches!(s.mode, Mode::ChatEvents) {
        s.cfg.kafka.chat_event_mode.replay_records as i64
    } else {
        0
    };
    let mut assignment = TopicPartitionList::new();
    let mut parts = Vec::new();
    for e in committed.elements() {
        let (low, high) =
            s.consumer
                .fetch_watermarks(e.topic(), e.partition(), METADATA_TIMEOUT)?;
        let resume = offset_value(e.offset()).unwrap_or(low).clamp(low, high);
        let start = (resume - replay).max(low);
        assignment.add_partition_offset(e.topic(), e.partition(), Offset::Offset(start))?;
        tracing::info!(
            consumer = %s.name, topic = e.topic(), partition = e.partition(),
            committed = resume, start, "assigned partition"
        );
        parts.push((
            e.topic().to_owned(),
            e.partition(),
            Part {
                start,
                replay_until: resume,
            },
        ));
    }
    s.consumer.incremental_assign(&assignment)?;
    let mut known = s.parts.lock();
    for (topic, partition, part) in parts {
        known.entry(topic).or_default().insert(partition, part);
    }
    Ok(())
}

struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(BACKOFF_MIN)
    }

    /// Sleeps for the current delay and doubles it; false if the node is shutting down.
    async fn wait(&mut self, node: &Node) -> bool {
        let delay = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        tokio::select! {
            _ = node.shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

async fn consume(s: Arc<Shared>) {
    let mut backoff = Backoff::new();
    loop {
        let msg = tokio::select! {
            _ = s.node.shutdown.cancelled() => break,
            m = s.consumer.recv() => m,
        };
        let m = match msg {
            Ok(m) => m,
            Err(e) => {
                fail(&s, "broker");
                tracing::warn!(consumer = %s.name, error = %e, "kafka consume error");
                if !backoff.wait(&s.node).await {
                    break;
                }
                continue;
            }
        };
        backoff = Backoff::new();
        if !handle(&s, &m).await {
            break; // shutting down mid-retry: the offset stays unstored, the record is re-read
        }
        if let Err(e) = s
            .consumer
            .store_offset(m.topic(), m.partition(), m.offset())
        {
            tracing::warn!(consumer = %s.name, error = %e, "storing offset");
        }
    }
    if let Err(e) = s.consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::warn!(consumer = %s.name, error = %e, "final offset commit");
    }
    tracing::info!(consumer = %s.name, "consumer stopped");
}

/// Why applying a record failed.
enum Failure {
    /// Passing (the hub's broker is unavailable): retry the same record.
    Retry(String),
    /// The record asks for something that will never work: dead-letter it.
    Reject(String),
}

/// How applying a record ended when it did not succeed.
enum Unapplied {
    /// Dead-letter it, for this reason.
    Rejected(String),
    /// The node began shutting down mid-retry: leave the offset unstored, to be re-read.
    ShuttingDown,
}

fn classify(e: ProtocolError) -> Failure {
    if e.code == chorus_protocol::codes::ERROR_INTERNAL.code {
        Failure::Retry(e.message)
    } else {
        Failure::Reject(format!("{} ({})", e.message, e.code))
    }
}

/// Applies one record; false if the node began shutting down before it was done.
async fn handle(s: &Shared, m: &BorrowedMessage<'_>) -> bool {
    let part = s
        .parts
        .lock()
        .get(m.topic())
        .and_then(|ps| ps.get(&m.partition()))
        .cloned();
    let Some(part) = part else {
        return true; // not (or no longer) assigned
    };
    let deliver = m.offset() >= part.replay_until;
    let headers: Vec<(&str, &[u8])> = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key, h.value.unwrap_or(b""))).collect())
        .unwrap_or_default();
    let record = Record {
        payload: m.payload().unwrap_or(b""),
        headers,
    };
    let outcome = match decode(&s.mode, &record) {
        Err(reason) => Err(Unapplied::Rejected(reason)),
        Ok(Action::Ignore(why)) => {
            tracing::debug!(consumer = %s.name, why, "record ignored");
            count(s, "ignored");
            return true;
        }
        // Commands and unsourced publications from before the committed offset were run by
        // an earlier run; running them again would duplicate them.
        Ok(Action::Api { .. }) if !deliver => return true,
        Ok(Action::Publish(ref p)) if !p.sourced && !deliver => return true,
        Ok(Action::Api { method, params }) => {
            apply(s, || async {
                crate::api::methods::dispatch(&s.node, &method, &params)
                    .await
                    .map(drop)
                    .map_err(|e| match e {
                        ApiError::Protocol(e) => classify(e),
                        other => Failure::Reject(other.to_string()),
                    })
            })
            .await
        }
        Ok(Action::Publish(p)) => {
            let source = s
                .chat_epoch
                .as_ref()
                .filter(|_| p.sourced)
                .map(|epoch| SourcePosition {
                    epoch: epoch.clone(),
                    lane: m.partition(),
                    offset: m.offset() as u64 + 1,
                    complete_after: part.start as u64,
                    deliver,
                });
            publish(s, &p, source).await
        }
    };
    match outcome {
        Ok(()) => {
            if deliver {
                count(s, "published");
                if let Some(ts) = m.timestamp().to_millis() {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    s.node
                        .metrics
                        .consumer_delay
                        .with_label_values(&[&s.name])
                        .observe((now - ts).max(0) as f64 / 1000.0);
                }
            } else {
                count(s, "replayed");
            }
            true
        }
        Err(Unapplied::ShuttingDown) => false,
        Err(Unapplied::Rejected(reason)) => dead_letter(s, m, &reason).await,
    }
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

/// Publishes into every channel of `p`. Channels that refuse the publication are named in
/// the error (the others got it; their idempotency key makes a later replay harmless).
async fn publish(s: &Shared, p: &Publish, source: Option<SourcePosition>) -> Result<(), Unapplied> {
    let mut refused = Vec::new();
    for channel in &p.channels {
        let result = apply(s, || async {
            let data = serde_json::value::RawValue::from_string(p.data.get().to_owned())
                .expect("invariant: already valid JSON");
            s.node
                .publish_record(
                    channel,
                    data,
                    p.tags.clone(),
                    p.idempotency_key.clone(),
                    p.skip_history,
                    source.clone(),
                )
                .await
                .map(drop)
                .map_err(classify)
        })
        .await;
        match result {
            Ok(()) => {}
            Err(Unapplied::ShuttingDown) => return Err(Unapplied::ShuttingDown),
            Err(Unapplied::Rejected(e)) => refused.push(format!("{channel}: {e}")),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Unapplied::Rejected(format!(
            "refused by the hub: {}",
            refused.join("; ")
        )))
    }
}

/// Runs `f` until it succeeds or is rejected, backing off while it fails for a passing
/// reason.
async fn apply<F, Fut>(s: &Shared, mut f: F) -> Result<(), Unapplied>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let mut backoff = Backoff::new();
    loop {
        match f().await {
            Ok(()) => {
                s.status.retried();
                return Ok(());
            }
            Err(Failure::Reject(reason)) => return Err(Unapplied::Rejected(reason)),
            Err(Failure::Retry(reason)) => {
                fail(s, "publish");
                tracing::warn!(consumer = %s.name, %reason, "publish failed; retrying");
                s.status.set("retrying", Some(reason));
                if !backoff.wait(&s.node).await {
                    return Err(Unapplied::ShuttingDown);
                }
            }
        }
    }
}

fn dead_letter_topic(s: &Shared, source: &str) -> String {
    if s.cfg.kafka.dead_letter_topic.is_empty() {
        format!("{source}.dlq")
    } else {
        s.cfg.kafka.dead_letter_topic.clone()
    }
}

/// Creates the dead-letter topic once per run; an existing topic is fine.
async fn ensure_topic(s: &Shared, topic: &str) {
    if s.dlq_topics.lock().contains(topic) {
        return;
    }
    let created = s
        .admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT)),
        )
        .await;
    match created.as_deref() {
        Ok([Ok(_)]) | Ok([Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))]) => {
            s.dlq_topics.lock().insert(topic.to_owned());
        }
        other => {
            // Producing may still work (auto-created or created by an operator).
            tracing::warn!(consumer = %s.name, topic, result = ?other, "creating the dead-letter topic");
        }
    }
}

/// Writes the record, with its key and headers, to the dead-letter topic and says why in
/// `chorus-dlq-*` headers. Retried until it lands: the record must not be lost.
async fn dead_letter(s: &Shared, m: &BorrowedMessage<'_>, reason: &str) -> bool {
    let topic = dead_letter_topic(s, m.topic());
    ensure_topic(s, &topic).await;
    let mut headers = OwnedHeaders::new();
    if let Some(h) = m.headers() {
        for h in h.iter() {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let partition = m.partition().to_string();
    let offset = m.offset().to_string();
    for (key, value) in [
        ("chorus-dlq-reason", reason),
        ("chorus-dlq-consumer", s.name.as_str()),
        ("chorus-dlq-topic", m.topic()),
        ("chorus-dlq-partition", partition.as_str()),
        ("chorus-dlq-offset", offset.as_str()),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    let mut backoff = Backoff::new();
    loop {
        let mut record = FutureRecord::to(&topic).headers(headers.clone());
        if let Some(p) = m.payload() {
            record = record.payload(p);
        }
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        match s.producer.send(record, METADATA_TIMEOUT).await {
            Ok(_) => break,
            Err((e, _)) => {
                fail(s, "dead_letter");
                tracing::warn!(consumer = %s.name, %topic, error = %e, "dead-letter write failed; retrying");
                s.status
                    .set("retrying", Some(format!("dead-letter topic {topic}: {e}")));
                if !backoff.wait(&s.node).await {
                    return false;
                }
            }
        }
    }
    count(s, "dead_lettered");
    tracing::warn!(
        consumer = %s.name, topic = m.topic(), partition = m.partition(), offset = m.offset(),
        dead_letter_topic = %topic, reason, "record dead-lettered"
    );
    true
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
