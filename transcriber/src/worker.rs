//! The job loop, for either task: read a record of the audio topic, fetch the clip, decode it,
//! run Whisper on the blocking pool (or of the image topic: make a thumbnail on the blocking
//! pool and store it), produce the outcome to the chat topic, and only after its ack commit the
//! record's offset. A worker that dies anywhere before the commit leaves the record to the
//! next one (at least once; the outcome's fixed event id makes a repeat harmless).
//!
//! A clip that cannot be transcribed (missing, corrupt, too long), or an image that cannot be
//! thumbnailed (a decompression bomb, corrupt), is refused for good: its record goes to
//! `<topic>.dlq` with the reason, and a `message.transcription_failed` (`attachment.failed`)
//! event tells the chat. Failures that pass (Kafka, the object store) are retried with backoff
//! and shown in `/health`; the record waits, nothing is lost.

use std::sync::Arc;
use std::time::Duration;

use chorus_protocol::event::ChatEvent;
use chorus_runtime::backoff::{Aborted, Backoff};
use chorus_runtime::kafka::dlq::{self, DeadLetters, Letter};
use chorus_runtime::kafka::group;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::job::Job;
use crate::status::Status;
use crate::task::{Refused, Task};

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Worker {
    pub config: Config,
    pub consumer: Arc<StreamConsumer>,
    pub producer: FutureProducer,
    pub dead_letters: DeadLetters,
    pub store: Arc<dyn ObjectStore>,
    pub task: Task,
    pub topic: String,
    pub status: Arc<Status>,
}

pub fn client_config(config: &Config) -> ClientConfig {
    chorus_runtime::kafka::client(&config.kafka.brokers, "chorus-transcriber")
}

impl Worker {
    pub fn new(
        config: Config,
        store: Arc<dyn ObjectStore>,
        task: Task,
        status: Arc<Status>,
    ) -> anyhow::Result<Self> {
        let client = client_config(&config);
        let (topic, group) = match task {
            Task::Transcribe(_) => (config.kafka.audio_topic.clone(), config.kafka.group.clone()),
            Task::Thumbnail(_) => (
                config.kafka.image_topic.clone(),
                format!("{}.images", config.kafka.group),
            ),
        };
        let mut consumer_config = client.clone();
        // One id per group, as the group names go.
        let instance = match (&task, config.kafka.instance_id.as_str()) {
            (_, "") => String::new(),
            (Task::Transcribe(_), id) => id.to_owned(),
            (Task::Thumbnail(_), id) => format!("{id}.images"),
        };
        chorus_runtime::kafka::static_member(&mut consumer_config, &instance);
        let consumer: StreamConsumer = consumer_config
            .set("group.id", &group)
            .set(
                "session.timeout.ms",
                config.kafka.session_timeout_ms.to_string(),
            )
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // One clip at a time per worker: no need to prefetch a backlog into memory.
            .set("queued.max.messages.kbytes", "1024")
            .create()?;
        consumer.subscribe(&[&topic])?;
        let consumer = Arc::new(consumer);
        let producer: FutureProducer = chorus_runtime::kafka::reliable_producer(&client)
            .set("message.timeout.ms", "10000")
            .create()?;
        Ok(Worker {
            dead_letters: DeadLetters::new(&client, "chorus-transcriber")?,
            config,
            consumer,
            producer,
            store,
            task,
            topic,
            status,
        })
    }

    /// Runs until `shutdown`; the clip in hand is finished and committed first, unless a step
    /// is still being retried, in which case it is left uncommitted for the next worker.
    pub async fn run(self, shutdown: CancellationToken) {
        self.dead_letters
            .ensure_topic(&self.dead_letter_topic())
            .await;
        let probe = tokio::spawn(probe(
            self.producer.clone(),
            self.topic.clone(),
            self.status.clone(),
            shutdown.clone(),
        ));
        let group = tokio::spawn(group::watch(
            self.consumer.clone(),
            self.topic.clone(),
            group::EVERY,
            Duration::from_millis(self.config.kafka.rejoin_after_ms),
            self.status.group(&self.topic),
            shutdown.clone(),
            |_| {},
        ));
        tracing::info!(topic = %self.topic, "worker running");
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.consumer.recv() => r,
            };
            let record = match received {
                Ok(m) => m.detach(),
                Err(e) => {
                    self.status.kafka(false);
                    tracing::warn!(topic = %self.topic, error = %e, "reading");
                    if backoff.wait(&shutdown).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            self.status.kafka(true);
            if self.handle(&record, &shutdown).await.is_err() {
                break;
            }
            self.commit(&record);
        }
        let _ = probe.await;
        let _ = group.await;
    }

    fn commit(&self, record: &OwnedMessage) {
        let mut offsets = TopicPartitionList::new();
        let next = Offset::Offset(record.offset() + 1);
        if let Err(e) = offsets.add_partition_offset(record.topic(), record.partition(), next) {
            tracing::warn!(error = %e, "building the commit");
            return;
        }
        // Async: a lost commit only means the record is transcribed again, harmlessly.
        if let Err(e) = self.consumer.commit(&offsets, CommitMode::Async) {
            tracing::warn!(error = %e, partition = record.partition(), offset = record.offset(),
                "committing");
        }
    }

    async fn handle(&self, record: &OwnedMessage, stop: &CancellationToken) -> Result<(), Aborted> {
        let metrics = &self.status.metrics;
        let payload = record.payload().unwrap_or_default();
        let job = match Job::from_record(payload, self.task.kind()) {
            Ok(Some(job)) => job,
            Ok(None) => {
                metrics.jobs.with_label_values(&["skipped"]).inc();
                return Ok(());
            }
            Err(reason) => {
                self.dead_letter(record, &reason, stop).await?;
                metrics.jobs.with_label_values(&["unparsable"]).inc();
                return Ok(());
            }
        };
        match &self.task {
            Task::Thumbnail(bounds) => self.thumbnail(record, &job, *bounds, stop).await,
            Task::Transcribe(engine) => self.transcribe(record, &job, engine.clone(), stop).await,
        }
    }

    /// The clip's bytes; a missing blob is final, any other store error is retried.
    pub(crate) async fn fetch(
        &self,
        job: &Job,
        stop: &CancellationToken,
    ) -> Result<Result<Vec<u8>, Refused>, Aborted> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let key = Key::from(job.key.as_str());
        loop {
            let got = match self.store.get(&key).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            match got {
                Ok(bytes) => {
                    self.status.trouble(None);
                    return Ok(Ok(bytes.to_vec()));
                }
                Err(object_store::Error::NotFound { .. }) => {
                    return Ok(Err(Refused::Missing(job.key.clone())))
                }
                Err(e) => {
                    self.status.trouble(Some(format!("object store: {e}")));
                    self.status
                        .metrics
                        .retries
                        .with_label_values(&["fetch"])
                        .inc();
                    tracing::warn!(key = %job.key, error = %e, "fetching the clip");
                    backoff.wait(stop).await?;
                }
            }
        }
    }

    /// Produces a chat event keyed by its chat (its partition, so it follows the message it is
    /// about), retried until acknowledged.
    pub(crate) async fn produce(
        &self,
        event: &ChatEvent,
        stop: &CancellationToken,
    ) -> Result<(), Aborted> {
        let payload = event.encode();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let record = FutureRecord::to(&self.config.kafka.messages_topic)
                .key(&event.chat_id)
                .payload(&payload);
            let sent = tokio::select! {
                _ = stop.cancelled() => return Err(Aborted),
                r = self.producer.send(record, KAFKA_TIMEOUT) => r,
            };
            match sent {
                Ok(_) => {
                    self.status.trouble(None);
                    return Ok(());
                }
                Err((e, _)) => {
                    self.status
                        .trouble(Some(format!("producing to the chat topic: {e}")));
                    self.status
                        .metrics
                        .retries
                        .with_label_values(&["produce"])
                        .inc();
                    tracing::warn!(error = %e, "producing the outcome");
                    backoff.wait(stop).await?;
                }
            }
        }
    }

    /// The record as read to `<topic>.dlq`, with `chorus-dlq-*` headers saying why, retried
    /// until acknowledged.
    pub(crate) async fn dead_letter(
        &self,
        record: &OwnedMessage,
        reason: &str,
        stop: &CancellationToken,
    ) -> Result<(), Aborted> {
        let metrics = &self.status.metrics;
        self.dead_letters
            .send(
                &self.dead_letter_topic(),
                &Letter::of(record),
                reason,
                stop,
                |_| {
                    metrics.retries.with_label_values(&["dead_letter"]).inc();
                },
            )
            .await
    }

    fn dead_letter_topic(&self) -> String {
        dlq::topic_for("", &self.topic)
    }
}

/// Asks the cluster for the audio topic's metadata every two seconds, so `/health` tells the
/// truth while no record arrives.
async fn probe(
    producer: FutureProducer,
    topic: String,
    status: Arc<Status>,
    stop: CancellationToken,
) {
    loop {
        let (p, t) = (producer.clone(), topic.clone());
        let answer = tokio::task::spawn_blocking(move || {
            p.client()
                .fetch_metadata(Some(&t), Duration::from_secs(5))
                .map(drop)
        })
        .await;
        let up = matches!(answer, Ok(Ok(())));
        if !up {
            tracing::warn!(topic = %topic, "kafka does not answer");
        }
        status.kafka(up);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
