//! The one dead-letter writer. A record that can never be used goes to a dead-letter topic
//! with its key, value and headers as read, plus `chorus-dlq-*` headers saying why and where
//! it came from. The sink, the hub's Kafka consumers and the transcriber all write through
//! here, so the headers are the same whoever gave up. A send is retried with backoff until
//! the broker acknowledges it: the caller commits the record's offset only after that, so a
//! poison record is never silently lost and its partition goes on.

use std::collections::HashSet;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Aborted, Backoff};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The dead-letter topic of `source`: the configured one, or `<source>.dlq` when none is.
pub fn topic_for(configured: &str, source: &str) -> String {
    if configured.is_empty() {
        format!("{source}.dlq")
    } else {
        configured.to_owned()
    }
}

/// A record as read, borrowed for as long as it is being dead-lettered.
pub struct Letter<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl<'a> Letter<'a> {
    /// A record as librdkafka handed it over (borrowed or owned).
    pub fn of<M: Message>(m: &'a M) -> Letter<'a> {
        Letter {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            payload: m.payload(),
            headers: m
                .headers()
                .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
                .unwrap_or_default(),
        }
    }
}

pub struct DeadLetters {
    /// The `chorus-dlq-consumer` header: which service (or hub consumer) gave up.
    consumer: String,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Topics created (or found) in this run.
    created: Mutex<HashSet<String>>,
}

impl DeadLetters {
    /// A writer on its own idempotent producer, from the service's client config.
    pub fn new(client: &ClientConfig, consumer: impl Into<String>) -> KafkaResult<Self> {
        let mut producer = super::reliable_producer(client);
        producer.set("message.timeout.ms", TIMEOUT.as_millis().to_string());
        Ok(DeadLetters {
            consumer: consumer.into(),
            producer: producer.create()?,
            admin: client.create()?,
            created: Mutex::new(HashSet::new()),
        })
    }

    /// Creates `topic` once per run; an existing topic is fine, and a failure is only logged:
    /// the broker may auto-create it (or an operator did), and producing retries anyway.
    pub async fn ensure_topic(&self, topic: &str) {
        if self.created.lock().contains(topic) {
            return;
        }
        let created = self
            .admin
            .create_topics(
                &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            )
            .await;
        match created.as_deref() {
            Ok([Ok(_)]) | Ok([Err((_, RDKafkaErrorCode::TopicAlreadyExists))]) => {
                self.created.lock().insert(topic.to_owned());
            }
            other => {
                tracing::warn!(consumer = %self.consumer, topic, result = ?other,
                    "creating the dead-letter topic");
            }
        }
    }

    /// Writes `letter` to `topic` with `reason`, retried with backoff until the broker
    /// acknowledges it; `retrying` hears each failed attempt (for metrics and `/health`).
    /// Only `stop` ends it early, and then the caller must not commit the record.
    pub async fn send(
        &self,
        topic: &str,
        letter: &Letter<'_>,
        reason: &str,
        stop: &CancellationToken,
        mut retrying: impl FnMut(&KafkaError),
    ) -> Result<(), Aborted> {
        self.ensure_topic(topic).await;
        let headers = headers(letter, reason, &self.consumer);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let mut out = FutureRecord::<[u8], [u8]>::to(topic).headers(headers.clone());
            if let Some(k) = letter.key {
                out = out.key(k);
            }
            if let Some(p) = letter.payload {
                out = out.payload(p);
            }
            let sent = tokio::select! {
                _ = stop.cancelled() => return Err(Aborted),
                r = self.producer.send(out, TIMEOUT) => r,
            };
            match sent {
                Ok(_) => break,
                Err((e, _)) => {
                    retrying(&e);
                    tracing::warn!(consumer = %self.consumer, topic, error = %e,
                        "dead-letter write failed; retrying");
                    backoff.wait(stop).await?;
                }
            }
        }
        tracing::warn!(
            consumer = %self.consumer, topic = letter.topic, partition = letter.partition,
            offset = letter.offset, dead_letter_topic = topic, reason, "record dead-lettered"
        );
        Ok(())
    }
}

/// A dead letter's headers: the record's own as read, then `chorus-dlq-reason`, `-consumer`,
/// `-topic`, `-partition` and `-offset`.
fn headers(letter: &Letter<'_>, reason: &str, consumer: &str) -> OwnedHeaders {
    let (partition, offset) = (letter.partition.to_string(), letter.offset.to_string());
    let mut headers = OwnedHeaders::new();
    for &(key, value) in &letter.headers {
        headers = headers.insert(Header { key, value });
    }
    for (key, value) in [
        ("chorus-dlq-reason", reason),
        ("chorus-dlq-consumer", consumer),
        ("chorus-dlq-topic", letter.topic),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_keeps_its_headers_and_says_why_and_where() {
        let letter = Letter {
            topic: "chats",
            partition: 2,
            offset: 41,
            key: Some(b"c1"),
            payload: Some(b"{"),
            headers: vec![("content-type", Some(b"application/json"))],
        };
        let h = headers(&letter, "unparsable", "chorus-sink");
        let got: Vec<(String, String)> = h
            .iter()
            .map(|h| {
                let v = String::from_utf8(h.value.unwrap_or_default().to_vec()).unwrap_or_default();
                (h.key.to_owned(), v)
            })
            .collect();
        let want = [
            ("content-type", "application/json"),
            ("chorus-dlq-reason", "unparsable"),
            ("chorus-dlq-consumer", "chorus-sink"),
            ("chorus-dlq-topic", "chats"),
            ("chorus-dlq-partition", "2"),
            ("chorus-dlq-offset", "41"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(got, want);
        assert_eq!(topic_for("", "chats"), "chats.dlq");
        assert_eq!(topic_for("poison", "chats"), "poison");
    }
}
