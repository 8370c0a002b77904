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
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len() + 5);
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        for (key, value) in [
            ("chorus-dlq-reason", reason),
            ("chorus-dlq-consumer", "chorus-sink"),
            ("chorus-dlq-topic", self.source_topic.as_str()),
            ("chorus-dlq-partition", &partition),
            ("chorus-dlq-offset", &offset),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
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
