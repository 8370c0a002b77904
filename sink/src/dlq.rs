//! The dead-letter topic: a record that can never be stored goes there, with its key, value
//! and headers as read, plus `chorus-dlq-*` headers saying why and where it came from (the
//! same headers the hub's consumer writes). Its offset is committed only once the
//! dead-letter broker has acknowledged it, so a poison record is never silently lost, and
//! the partition goes on.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::backoff::{Aborted, Backoff};
use crate::consumer::Source;
use crate::metrics::Metrics;

const TIMEOUT: Duration = Duration::from_secs(5);

pub struct DeadLetters {
    topic: String,
    source_topic: String,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    created: tokio::sync::OnceCell<()>,
}

impl DeadLetters {
    pub fn new(client: &ClientConfig, topic: String, source_topic: String) -> anyhow::Result<Self> {
        let mut producer = client.clone();
        producer
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "10000");
        Ok(DeadLetters {
            topic,
            source_topic,
            producer: producer.create()?,
            admin: client.create()?,
            created: tokio::sync::OnceCell::new(),
        })
    }

    /// Creates the topic once; an existing one is fine, and a failure is only logged: the
    /// broker may auto-create it, and producing retries anyway.
    async fn ensure_topic(&self) {
        self.created
            .get_or_init(|| async {
                let result = self
                    .admin
                    .create_topics(
                        &[NewTopic::new(&self.topic, 1, TopicReplication::Fixed(1))],
                        &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
                    )
                    .await;
                if let Err(e) = result {
                    tracing::warn!(topic = %self.topic, error = %e, "creating the dead-letter topic");
                }
            })
            .await;
    }

    /// Sends `record` with `reason`; retried until the broker acknowledges it.
    pub async fn send(
        &self,
        record: &Source,
        reason: &str,
        kind: &str,
        metrics: &Metrics,
        abort: &CancellationToken,
    ) -> Result<(), Aborted> {
        self.ensure_topic().await;
        let headers = headers(
            record
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_slice()))),
            &Origin {
                reason,
                consumer: "chorus-sink",
                topic: &self.source_topic,
                partition: record.partition,
                offset: record.offset,
            },
        );
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let mut out = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers.clone());
            if let Some(k) = &record.key {
                out = out.key(k);
            }
            if let Some(p) = &record.payload {
                out = out.payload(p);
            }
            match self.producer.send(out, TIMEOUT).await {
                Ok(_) => break,
                Err((e, _)) => {
                    tracing::warn!(topic = %self.topic, error = %e, "dead-letter write failed; retrying");
                    backoff.wait(abort).await?;
                }
            }
        }
        metrics.dead_letters.with_label_values(&[kind]).inc();
        tracing::warn!(
            topic = %self.source_topic, partition = record.partition, offset = record.offset,
            dead_letter_topic = %self.topic, reason, "record dead-lettered"
        );
        Ok(())
    }
}

/// Why a record was dead-lettered and where it was read.
pub struct Origin<'a> {
    pub reason: &'a str,
    /// The service that gave up on it.
    pub consumer: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A dead letter's headers: the record's own as read, then `chorus-dlq-*` from `origin`. The
/// sink and the transcriber write them through here; the hub's consumer writes the same names.
pub fn headers<'a>(
    original: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>,
    origin: &Origin<'_>,
) -> OwnedHeaders {
    let (partition, offset) = (origin.partition.to_string(), origin.offset.to_string());
    let mut headers = OwnedHeaders::new();
    for (key, value) in original {
        headers = headers.insert(Header { key, value });
    }
    for (key, value) in [
        ("chorus-dlq-reason", origin.reason),
        ("chorus-dlq-consumer", origin.consumer),
        ("chorus-dlq-topic", origin.topic),
        ("chorus-dlq-partition", &partition),
        ("chorus-dlq-offset", &offset),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    headers
}
