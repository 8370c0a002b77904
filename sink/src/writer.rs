//! Writes one flush to DynamoDB and does not return until every write is durable, refused,
//! or the sink gives up (its shutdown grace ran out).
//!
//! - Puts and deletes go out as BatchWriteItem calls of at most 25 items and 16 MB;
//!   updates, which BatchWriteItem cannot express, as conditional UpdateItem calls. Up to
//!   `batch.concurrency` calls run at once. The flush holds one write per item (see
//!   [`crate::fold`]), so their order does not matter.
//! - Items DynamoDB hands back unprocessed, throttling and an unreachable DynamoDB are
//!   retried with exponential backoff and full jitter, forever: nothing is dropped.
//! - A call DynamoDB refuses outright (a validation error) is split into single writes so
//!   that only the item it refuses is reported back, to be dead-lettered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use futures_util::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::config::Batch;
use crate::fold::{Folded, Write};
use crate::status::Status;
use chorus_history::model::{item_size, Key};
use chorus_history::store::{delete_request, put_request, Failure, Store};
use chorus_runtime::backoff::{Aborted, Backoff};

/// BatchWriteItem's limits.
pub const MAX_BATCH_ITEMS: usize = 25;
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// A write DynamoDB refused: the records behind it and why.
#[derive(Debug)]
pub struct Refused {
    pub records: Vec<usize>,
    pub reason: String,
}

pub struct Writer {
    pub store: Arc<Store>,
    pub status: Arc<Status>,
    pub batch: Batch,
    /// Fires when the sink stops retrying (the end of the shutdown grace).
    pub abort: CancellationToken,
}

/// One BatchWriteItem call's worth: the requests and, for each, the records behind it.
struct Chunk {
    requests: Vec<WriteRequest>,
    records: Vec<Vec<usize>>,
}

enum Job {
    Batch(Chunk),
    Update {
        key: Key,
        sets: Vec<(String, AttributeValue)>,
        records: Vec<usize>,
    },
}

/// Splits puts and deletes into calls of at most 25 items and 16 MB, and keeps updates apart.
fn plan(folded: Vec<Folded>) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut chunk = Chunk {
        requests: Vec::new(),
        records: Vec::new(),
    };
    let mut bytes = 0;
    for f in folded {
        let (request, size) = match f.write {
            Write::Update(sets) => {
                jobs.push(Job::Update {
                    key: f.key,
                    sets,
                    records: f.records,
                });
                continue;
            }
            Write::Put(item) => {
                let size = item_size(&item);
                (put_request(item), size)
            }
            Write::Delete => (
                delete_request(&f.key),
                f.key.chat_id.len() + f.key.message_id.len(),
            ),
        };
        if chunk.requests.len() == MAX_BATCH_ITEMS || bytes + size > MAX_BATCH_BYTES {
            let full = std::mem::replace(
                &mut chunk,
                Chunk {
                    requests: Vec::new(),
                    records: Vec::new(),
                },
            );
            jobs.push(Job::Batch(full));
            bytes = 0;
        }
        bytes += size;
        chunk.requests.push(request);
        chunk.records.push(f.records);
    }
    if !chunk.requests.is_empty() {
        jobs.push(Job::Batch(chunk));
    }
    jobs
}

fn op(request: &WriteRequest) -> &'static str {
    if request.put_request.is_some() {
        "put"
    } else {
        "delete"
    }
}

impl Writer {
    /// Writes everything in `folded`; returns the writes DynamoDB refused.
    pub async fn write(&self, folded: Vec<Folded>) -> Result<Vec<Refused>, Aborted> {
        let results: Vec<Result<Vec<Refused>, Aborted>> = stream::iter(plan(folded))
            .map(|job| self.run(job))
            .buffer_unordered(self.batch.concurrency)
            .collect()
            .await;
        let mut refused = Vec::new();
        for r in results {
            refused.extend(r?);
        }
        Ok(refused)
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.batch.backoff_min_ms),
            Duration::from_millis(self.batch.backoff_max_ms),
        )
    }

    async fn run(&self, job: Job) -> Result<Vec<Refused>, Aborted> {
        match job {
            Job::Batch(chunk) => self.batch_write(chunk).await,
            Job::Update { key, sets, records } => self.update(&key, &sets, records).await,
        }
    }

    /// Counts a failed attempt and waits before the next.
    async fn failed(&self, failure: &Failure, backoff: &mut Backoff) -> Result<(), Aborted> {
        let reason = match failure {
            Failure::Throttled(_) => "throttled",
            Failure::Unavailable(e) => {
                self.status.dynamodb_down(e);
                "unavailable"
            }
            Failure::Rejected(_) => unreachable!("refusals are not retried"),
        };
        self.status
            .metrics
            .retries
            .with_label_values(&[reason])
            .inc();
        backoff.wait(&self.abort).await
    }

    async fn batch_write(&self, chunk: Chunk) -> Result<Vec<Refused>, Aborted> {
        let metrics = &self.status.metrics;
        // What is still to write; None while it is the whole chunk (saves a copy).
        let mut pending: Option<Vec<WriteRequest>> = None;
        let mut backoff = self.backoff();
        loop {
            let started = Instant::now();
            let sending = pending.as_ref().unwrap_or(&chunk.requests);
            match self.store.batch_write(sending.clone()).await {
                Ok(unprocessed) => {
                    metrics
                        .batch_write_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.status.dynamodb_ok();
                    // What came back unprocessed is what was not written.
                    let (mut puts, mut deletes) = (0, 0);
                    for r in sending.iter().filter(|r| !unprocessed.contains(r)) {
                        if op(r) == "put" {
                            puts += 1;
                        } else {
                            deletes += 1;
                        }
                    }
                    metrics
                        .items_written
                        .with_label_values(&["put"])
                        .inc_by(puts);
                    metrics
                        .items_written
                        .with_label_values(&["delete"])
                        .inc_by(deletes);
                    if unprocessed.is_empty() {
                        return Ok(Vec::new());
                    }
                    metrics
                        .retries
                        .with_label_values(&["unprocessed"])
                        .inc_by(unprocessed.len() as u64);
                    pending = Some(unprocessed);
                    backoff.wait(&self.abort).await?;
                }
                Err(Failure::Rejected(reason)) => {
                    self.status.dynamodb_ok();
                    let rest = pending.unwrap_or_else(|| chunk.requests.clone());
                    tracing::warn!(%reason, items = rest.len(), "batch refused; writing its items one by one");
                    return self.one_by_one(&chunk, rest).await;
                }
                Err(failure) => self.failed(&failure, &mut backoff).await?,
            }
        }
    }

    /// Writes each of `pending` alone; the ones DynamoDB refuses are reported.
    async fn one_by_one(
        &self,
        chunk: &Chunk,
        pending: Vec<WriteRequest>,
    ) -> Result<Vec<Refused>, Aborted> {
        let mut refused = Vec::new();
        for request in pending {
            let records = chunk
                .requests
                .iter()
                .position(|r| *r == request)
                .map(|i| chunk.records[i].clone())
                .expect("invariant: pending requests come from the chunk");
            let mut backoff = self.backoff();
            loop {
                match self.store.write_one(request.clone()).await {
                    Ok(()) => {
                        self.status.dynamodb_ok();
                        self.status
                            .metrics
                            .items_written
                            .with_label_values(&[op(&request)])
                            .inc();
                        break;
                    }
                    Err(Failure::Rejected(reason)) => {
                        refused.push(Refused { records, reason });
                        break;
                    }
                    Err(failure) => self.failed(&failure, &mut backoff).await?,
                }
            }
        }
        Ok(refused)
    }

    async fn update(
        &self,
        key: &Key,
        sets: &[(String, AttributeValue)],
        records: Vec<usize>,
    ) -> Result<Vec<Refused>, Aborted> {
        let mut backoff = self.backoff();
        loop {
            match self.store.update(key, sets).await {
                Ok(applied) => {
                    self.status.dynamodb_ok();
                    if applied {
                        self.status
                            .metrics
                            .items_written
                            .with_label_values(&["update"])
                            .inc();
                    } else {
                        tracing::debug!(chat_id = %key.chat_id, message_id = %key.message_id,
                            "change to a message that is not stored; dropped");
                    }
                    return Ok(Vec::new());
                }
                Err(Failure::Rejected(reason)) => return Ok(vec![Refused { records, reason }]),
                Err(failure) => self.failed(&failure, &mut backoff).await?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_history::model::Change;

    fn put(m: usize, text_bytes: usize) -> (usize, Key, Change) {
        let key = Key {
            chat_id: "c".into(),
            message_id: format!("{m:026}"),
        };
        let mut item = key.item();
        item.insert("text".into(), AttributeValue::S("x".repeat(text_bytes)));
        (m, key, Change::Put(item))
    }

    fn batch_sizes(jobs: &[Job]) -> Vec<usize> {
        jobs.iter()
            .map(|j| match j {
                Job::Batch(c) => c.requests.len(),
                Job::Update { .. } => 0,
            })
            .collect()
    }

    #[test]
    fn calls_hold_at_most_25_items() {
        let jobs = plan(crate::fold::fold((0..60).map(|m| put(m, 10))));
        assert_eq!(batch_sizes(&jobs), [25, 25, 10]);
    }

    #[test]
    fn calls_hold_at_most_16_mb() {
        // 399 KB items: 25 of them would be 9.7 MB, so the count binds first; with the
        // largest items DynamoDB allows the byte limit can never be reached by 25 items,
        // but the plan checks it anyway against an item size it does not control.
        let jobs = plan(crate::fold::fold((0..30).map(|m| put(m, 399 * 1024))));
        assert_eq!(batch_sizes(&jobs), [25, 5]);
        let big = 5 * 1024 * 1024;
        let jobs = plan(crate::fold::fold((0..7).map(|m| put(m, big))));
        assert_eq!(
            batch_sizes(&jobs),
            [3, 3, 1],
            "16 MB holds three 5 MB items"
        );
    }

    #[test]
    fn updates_are_their_own_calls() {
        let key = Key {
            chat_id: "c".into(),
            message_id: "m".into(),
        };
        let jobs = plan(crate::fold::fold([
            put(1, 1),
            (
                2,
                key,
                Change::Update(vec![("text".into(), AttributeValue::S("e".into()))]),
            ),
        ]));
        assert_eq!(batch_sizes(&jobs), [0, 1]);
    }
}
