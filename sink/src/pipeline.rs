//! The write loop: gather records into a flush, write it, dead-letter what cannot be stored,
//! then commit. Flushes run one after another, so a committed offset always means that every
//! record up to it is durable in DynamoDB or acknowledged by the dead-letter topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use tokio::sync::mpsc;

use chorus_runtime::backoff::Aborted;
use chorus_runtime::kafka::dlq::{DeadLetters, Letter};

use crate::consumer::{commit_list, Kafka, Record, Source};
use crate::fold::fold;
use crate::writer::Writer;
use chorus_history::model::Unstorable;

pub struct Pipeline {
    pub consumer: Arc<Kafka>,
    pub writer: Writer,
    pub dead_letters: DeadLetters,
    /// Where they go: `kafka.dead_letter_topic`, or `<topic>.dlq`.
    pub dead_letter_topic: String,
    pub topic: String,
}

impl Pipeline {
    /// Runs until the reader is done (the channel closes) and everything it read is written
    /// and committed, or until the shutdown grace runs out.
    pub async fn run(self, mut records: mpsc::Receiver<Record>) {
        let max = self.writer.batch.max_items;
        let interval = Duration::from_millis(self.writer.batch.flush_interval_ms);
        let mut committed: HashMap<i32, i64> = HashMap::new();
        let status = self.writer.status.clone();
        let mut batch = Vec::with_capacity(max);
        loop {
            if records.recv_many(&mut batch, max).await == 0 {
                break; // closed and drained
            }
            // Records that queued while the last flush was written have waited already.
            let deadline = batch[0].source.read_at + interval;
            while batch.len() < max {
                let room = max - batch.len();
                let more = tokio::time::timeout_at(deadline, records.recv_many(&mut batch, room));
                match more.await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let held = batch.len();
            status.set_in_flush(held);
            status.set_queued(records.len());
            match self
                .flush(std::mem::replace(&mut batch, Vec::with_capacity(max)))
                .await
            {
                Ok(last) => {
                    self.commit(&last, CommitMode::Async);
                    committed.extend(last);
                }
                Err(Aborted) => {
                    tracing::warn!(
                        records = batch.len() + records.len(),
                        "gave up writing at shutdown; uncommitted records will be read again"
                    );
                    return;
                }
            }
            status.set_in_flush(0);
            status.set_queued(records.len());
        }
        // Everything read was written: make the last commit durable before leaving the group.
        self.commit(&committed, CommitMode::Sync);
        tracing::info!("writer stopped; offsets committed");
    }

    /// Writes one flush; returns the last offset it covers per partition.
    async fn flush(&self, batch: Vec<Record>) -> Result<HashMap<i32, i64>, Aborted> {
        let generations = &self.consumer.context().generations;
        let read = batch.len();
        let mut sources: Vec<Source> = Vec::with_capacity(read);
        let mut unstorable: Vec<(usize, String, &'static str)> = Vec::new();
        let mut changes = Vec::with_capacity(read);
        for r in batch {
            if generations.of(r.source.partition) != r.source.generation {
                continue;
            }
            let i = sources.len();
            match r.change {
                Ok(Some((key, change))) => changes.push((i, key, change)),
                // About the chat, not a message: nothing to store, committed with the rest.
                Ok(None) => {}
                Err(e @ Unstorable::Event(_)) => unstorable.push((i, e.to_string(), "unparsable")),
                Err(e @ Unstorable::TooLarge(_)) => {
                    unstorable.push((i, e.to_string(), "too_large"))
                }
            }
            sources.push(r.source);
        }
        if sources.len() < read {
            tracing::info!(
                dropped = read - sources.len(),
                "dropped records of revoked partitions; their new owner reads them again"
            );
        }
        for refused in self.writer.write(fold(changes)).await? {
            for i in refused.records {
                unstorable.push((
                    i,
                    format!("dynamodb refused the item: {}", refused.reason),
                    "rejected",
                ));
            }
        }
        unstorable.sort_by_key(|(i, ..)| *i);
        for (i, reason, kind) in unstorable {
            let s = &sources[i];
            let letter = Letter {
                topic: &self.topic,
                partition: s.partition,
                offset: s.offset,
                key: s.key.as_deref(),
                payload: s.payload.as_deref(),
                headers: s
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
                    .collect(),
            };
            self.dead_letters
                .send(
                    &self.dead_letter_topic,
                    &letter,
                    &reason,
                    &self.writer.abort,
                    |_| {},
                )
                .await?;
            let metrics = &self.writer.status.metrics;
            metrics.dead_letters.with_label_values(&[kind]).inc();
        }
        let mut last = HashMap::new();
        for s in &sources {
            let at = last.entry(s.partition).or_insert(s.offset);
            *at = (*at).max(s.offset);
        }
        Ok(last)
    }

    fn commit(&self, last: &HashMap<i32, i64>, mode: CommitMode) {
        if last.is_empty() {
            return;
        }
        // A partition revoked meanwhile refuses the commit; its new owner re-reads from the
        // group's offset, and rewriting is harmless.
        if let Err(e) = self.consumer.commit(&commit_list(&self.topic, last), mode) {
            tracing::warn!(error = %e, "offset commit failed; the records will be read again");
        }
    }
}
