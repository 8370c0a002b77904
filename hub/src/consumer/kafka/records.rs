//! The record loop: each record applied in partition order (published to the hub's broker,
//! or run as a server API command), retried while the hub's broker is unavailable,
//! dead-lettered when it never can be, and only then its offset stored.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chorus_protocol::codes::ProtocolError;
use chorus_runtime::kafka::dlq::{self, Letter};
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::{count, fail, retry_backoff, Shared};
use crate::broker::SourcePosition;
use crate::command::{Command, CommandError};
use crate::consumer::record::{decode, Action, Publish, Record};

pub(super) async fn consume(s: Arc<Shared>) {
    let mut backoff = retry_backoff();
    let read_bytes = s.node.metrics.consumer_bytes.with_label_values(&[&s.name]);
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
                if backoff.wait(&s.node.shutdown).await.is_err() {
                    break;
                }
                continue;
            }
        };
        backoff = retry_backoff();
        read_bytes.inc_by((m.key_len() + m.payload_len()) as u64);
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
                let run = match Command::parse(&method, &params) {
                    Ok(command) => command.run(&s.node).await,
                    Err(e) => Err(e),
                };
                run.map(drop).map_err(|e| match e {
                    CommandError::Protocol(e) => classify(e),
                    other => Failure::Reject(other.to_string()),
                })
            })
            .await
        }
        Ok(Action::Publish(mut p)) => {
            if !p.sourced && p.idempotency_key.is_none() {
                // Read once per cluster, but not quite: a record published by the node that
                // held its partition, and not yet committed when the partition moved (a node
                // killed, a node added), is read again by the next holder. Its place in the
                // log is the same on every node, so it makes the idempotency key the record
                // did not bring, and the engine drops the repeat.
                p.idempotency_key = Some(record_key(m));
            }
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

/// The idempotency key of a record that brings none: its topic, partition and offset.
fn record_key(m: &BorrowedMessage<'_>) -> String {
    format!("kafka:{}:{}:{}", m.topic(), m.partition(), m.offset())
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
    let mut backoff = retry_backoff();
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
                if backoff.wait(&s.node.shutdown).await.is_err() {
                    return Err(Unapplied::ShuttingDown);
                }
            }
        }
    }
}

/// Writes the record to the dead-letter topic (`<topic>.dlq` unless configured) and says why;
/// retried until it lands: the record must not be lost. False if the node began shutting
/// down first.
async fn dead_letter(s: &Shared, m: &BorrowedMessage<'_>, reason: &str) -> bool {
    let topic = dlq::topic_for(&s.cfg.kafka.dead_letter_topic, m.topic());
    let sent = s
        .dead_letters
        .send(&topic, &Letter::of(m), reason, &s.node.shutdown, |e| {
            fail(s, "dead_letter");
            s.status
                .set("retrying", Some(format!("dead-letter topic {topic}: {e}")));
        })
        .await;
    if sent.is_ok() {
        count(s, "dead_lettered");
    }
    sent.is_ok()
}
