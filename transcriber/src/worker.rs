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
use std::time::{Duration, Instant};

use chorus_protocol::event::{AttachmentKind, ChatEvent, Thumbnail};
use chorus_sink::backoff::{Aborted, Backoff};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::audio;
use crate::config::Config;
use crate::engine::{Engine, Transcript};
use crate::images::thumbnail::{self, Bounds};
use crate::job::Job;
use crate::status::Status;

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Worker {
    pub config: Config,
    pub consumer: Arc<StreamConsumer>,
    pub producer: FutureProducer,
    pub admin: AdminClient<DefaultClientContext>,
    pub store: Arc<dyn ObjectStore>,
    pub task: Task,
    pub topic: String,
    pub status: Arc<Status>,
}

/// What a worker does with its topic's records.
#[derive(Clone)]
pub enum Task {
    /// Voice messages of the audio topic, through Whisper.
    Transcribe(Arc<Engine>),
    /// Image attachments of the image topic, to thumbnails.
    Thumbnail(Bounds),
}

impl Task {
    fn kind(&self) -> AttachmentKind {
        match self {
            Task::Transcribe(_) => AttachmentKind::Voice,
            Task::Thumbnail(_) => AttachmentKind::Image,
        }
    }
}

/// Why a clip is refused for good.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("the voice file {0} is missing")]
    Missing(String),
    #[error(transparent)]
    Audio(#[from] audio::AudioError),
    #[error("{0}")]
    Engine(String),
    #[error(transparent)]
    Image(#[from] thumbnail::ThumbnailError),
}

pub fn client_config(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers)
        .set("client.id", "chorus-transcriber")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "5000");
    c
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
        chorus_sink::group::static_member(&mut consumer_config, &instance);
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
        let producer: FutureProducer = client
            .clone()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "10000")
            .create()?;
        Ok(Worker {
            admin: client.create()?,
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
        self.create_dead_letter_topic().await;
        let probe = tokio::spawn(probe(
            self.producer.clone(),
            self.topic.clone(),
            self.status.clone(),
            shutdown.clone(),
        ));
        let group = tokio::spawn(chorus_sink::group::watch(
            self.consumer.clone(),
            self.topic.clone(),
            chorus_sink::group::EVERY,
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
        if let Task::Thumbnail(bounds) = &self.task {
            return self.thumbnail(record, &job, *bounds, stop).await;
        }
        tracing::info!(chat = %job.chat_id, message_id = %job.message_id, key = %job.key,
            partition = record.partition(), offset = record.offset(), "transcribing");
        let outcome = match self.fetch(&job, stop).await? {
            Ok(bytes) => self.transcribe(bytes).await,
            Err(refused) => Err(refused),
        };
        let now = now_ms();
        match outcome {
            Ok(t) => {
                self.produce(&job.transcribed(t.text, t.language, now), stop)
                    .await?;
                metrics.jobs.with_label_values(&["transcribed"]).inc();
                if let Some(produced) = record.timestamp().to_millis() {
                    let seconds = (now_ms() - produced).max(0) as f64 / 1000.0;
                    metrics.job_latency_seconds.observe(seconds);
                }
                tracing::info!(chat = %job.chat_id, message_id = %job.message_id, "transcribed");
            }
            Err(refused) => {
                let reason = refused.to_string();
                self.dead_letter(record, &reason, stop).await?;
                self.produce(&job.failed(reason, now), stop).await?;
                metrics.jobs.with_label_values(&["failed"]).inc();
            }
        }
        Ok(())
    }

    /// The clip's bytes; a missing blob is final, any other store error is retried.
    async fn fetch(
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

    /// An image job: the thumbnail stored beside the original (`<key>.thumb.jpg`), then
    /// `attachment.processed`; or the record dead-lettered and `attachment.failed`.
    async fn thumbnail(
        &self,
        record: &OwnedMessage,
        job: &Job,
        bounds: Bounds,
        stop: &CancellationToken,
    ) -> Result<(), Aborted> {
        let metrics = &self.status.metrics;
        tracing::info!(chat = %job.chat_id, message_id = %job.message_id, key = %job.key,
            "thumbnailing");
        let made = match self.fetch(job, stop).await? {
            Ok(bytes) => tokio::task::spawn_blocking(move || thumbnail::make(&bytes, bounds))
                .await
                .map_err(|e| Refused::Engine(format!("the thumbnail task failed: {e}")))
                .and_then(|r| r.map_err(Refused::from)),
            Err(refused) => Err(refused),
        };
        let thumb = match made {
            Ok(t) => t,
            Err(refused) => {
                let reason = refused.to_string();
                self.dead_letter(record, &reason, stop).await?;
                self.produce(&job.image_failed(reason, now_ms()), stop)
                    .await?;
                metrics.jobs.with_label_values(&["image_failed"]).inc();
                return Ok(());
            }
        };
        let key = format!("{}.thumb.jpg", job.key);
        let size = thumb.jpeg.len() as u64;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let payload = object_store::PutPayload::from(thumb.jpeg);
        loop {
            match self
                .store
                .put(&Key::from(key.as_str()), payload.clone())
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    self.status.trouble(Some(format!("object store: {e}")));
                    metrics.retries.with_label_values(&["store"]).inc();
                    tracing::warn!(key = %key, error = %e, "storing the thumbnail");
                    backoff.wait(stop).await?;
                }
            }
        }
        let event = job.processed(
            Thumbnail {
                key,
                mime: "image/jpeg".into(),
                width: thumb.width,
                height: thumb.height,
                size,
            },
            now_ms(),
        );
        self.produce(&event, stop).await?;
        metrics.jobs.with_label_values(&["thumbnailed"]).inc();
        Ok(())
    }

    async fn transcribe(&self, bytes: Vec<u8>) -> Result<Transcript, Refused> {
        let Task::Transcribe(engine) = &self.task else {
            unreachable!("invariant: only the transcribing worker transcribes")
        };
        let engine = engine.clone();
        let max_seconds = self.config.media.max_voice_seconds;
        let metrics = &self.status.metrics;
        let (transcript, clip_seconds, took) = tokio::task::spawn_blocking(move || {
            let decoded = audio::decode(bytes, max_seconds)?;
            let samples = audio::to_whisper_rate(&decoded.samples, decoded.sample_rate);
            let start = Instant::now();
            let transcript = engine
                .transcribe(&samples)
                .map_err(|e| Refused::Engine(e.to_string()))?;
            let clip_seconds = samples.len() as f64 / f64::from(audio::resample::WHISPER_RATE);
            Ok::<_, Refused>((transcript, clip_seconds, start.elapsed().as_secs_f64()))
        })
        .await
        .map_err(|e| Refused::Engine(format!("the transcription task failed: {e}")))??;
        metrics.inference_seconds.observe(took);
        if took > 0.0 {
            metrics.realtime_factor.observe(clip_seconds / took);
        }
        Ok(transcript)
    }

    /// Produces a chat event keyed by its chat (its partition, so it follows the message it is
    /// about), retried until acknowledged.
    async fn produce(&self, event: &ChatEvent, stop: &CancellationToken) -> Result<(), Aborted> {
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

    /// The record as read, with `chorus-dlq-*` headers saying why (as the sink and the hub
    /// write them), retried until acknowledged.
    async fn dead_letter(
        &self,
        record: &OwnedMessage,
        reason: &str,
        stop: &CancellationToken,
    ) -> Result<(), Aborted> {
        let topic = format!("{}.dlq", self.topic);
        let original = record.headers().map(|h| h.iter().map(|h| (h.key, h.value)));
        let headers = chorus_sink::dlq::headers(
            original.into_iter().flatten(),
            &chorus_sink::dlq::Origin {
                reason,
                consumer: "chorus-transcriber",
                topic: record.topic(),
                partition: record.partition(),
                offset: record.offset(),
            },
        );
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let mut out = FutureRecord::<[u8], [u8]>::to(&topic).headers(headers.clone());
            if let Some(k) = record.key() {
                out = out.key(k);
            }
            if let Some(p) = record.payload() {
                out = out.payload(p);
            }
            let sent = tokio::select! {
                _ = stop.cancelled() => return Err(Aborted),
                r = self.producer.send(out, KAFKA_TIMEOUT) => r,
            };
            match sent {
                Ok(_) => break,
                Err((e, _)) => {
                    self.status
                        .metrics
                        .retries
                        .with_label_values(&["dead_letter"])
                        .inc();
                    tracing::warn!(topic = %topic, error = %e, "dead-letter write failed; retrying");
                    backoff.wait(stop).await?;
                }
            }
        }
        tracing::warn!(topic = %record.topic(), partition = record.partition(),
            offset = record.offset(), dead_letter_topic = %topic, reason, "record dead-lettered");
        Ok(())
    }

    /// An existing topic is fine, and a failure is only logged: the broker may create it on
    /// first use, and producing retries anyway.
    async fn create_dead_letter_topic(&self) {
        let topic = format!("{}.dlq", self.topic);
        let created = self
            .admin
            .create_topics(
                &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)),
            )
            .await;
        if let Err(e) = created {
            tracing::warn!(topic = %topic, error = %e, "creating the dead-letter topic");
        }
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
