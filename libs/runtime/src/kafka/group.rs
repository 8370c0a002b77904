//! Consumer-group liveness, shared by every group consumer of the services: the sink, the
//! transcriber's audio and image workers, and the API's state consumer.
//!
//! A member killed with `kill -9` and restarted at once joins while its dead predecessor is
//! still counted in the group, until that one's session times out. What a broker does next
//! decides whether the new member ever gets partitions; tansu 0.6 can leave it holding none
//! (see `docs/ARCHITECTURE.md`, "Consumer groups after a crash"). The product must not depend
//! on that: every member runs [`watch`], which measures the group's lag on every partition
//! and this member's assignment. Holding nothing while the group lags and no member commits
//! (a spare member of a group with more members than partitions sees lag too, but the
//! committed offsets move), for longer than its patience (more than a session timeout, so an
//! ordinary rebalance is never interrupted), means no one is reading what this member could:
//! it rejoins (unsubscribe, subscribe: a LeaveGroup and a fresh JoinGroup), which starts a new
//! rebalance. `/health` says `degraded` while it starves.
//!
//! [`super::static_member`] is the other remedy: with a stable `group.instance.id` a member restarted
//! at once takes its predecessor's place without waiting out its session.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
/// How often [`watch`] looks.
pub const EVERY: Duration = Duration::from_secs(2);
/// The default patience: librdkafka's session timeout (45 s) and a margin.
pub const DEFAULT_REJOIN_AFTER_MS: u64 = 60_000;

/// What one observation means.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Holding partitions, or nothing to read, or another member is making progress.
    Serving,
    /// Holding none while the group lags and stands still, for less than the patience so far.
    Starved,
    /// Starved past the patience: rejoin now (the clock starts again).
    Rejoin,
}

/// The starvation clock of one member.
#[derive(Debug)]
pub struct Watch {
    patience: Duration,
    starved_since: Option<Instant>,
}

impl Watch {
    pub fn new(patience: Duration) -> Self {
        Watch {
            patience,
            starved_since: None,
        }
    }

    /// One look: this member's partition count, the group's lag, and whether the group's
    /// committed offsets moved since the last look.
    pub fn observe(
        &mut self,
        assigned: usize,
        group_lag: i64,
        progressed: bool,
        now: Instant,
    ) -> Verdict {
        if assigned > 0 || group_lag <= 0 || progressed {
            self.starved_since = None;
            return Verdict::Serving;
        }
        let since = *self.starved_since.get_or_insert(now);
        if now.duration_since(since) >= self.patience {
            self.starved_since = Some(now);
            Verdict::Rejoin
        } else {
            Verdict::Starved
        }
    }
}

/// What [`watch`] reports, for `/health` and metrics.
#[derive(Debug, Default)]
pub struct GroupHealth {
    starved: AtomicBool,
    rejoins: AtomicU64,
    lag: AtomicI64,
}

impl GroupHealth {
    /// Holding no partition while the group lags: `/health` says `degraded`.
    pub fn starved(&self) -> bool {
        self.starved.load(Ordering::Relaxed)
    }

    /// How often this member rejoined its group to get partitions back.
    pub fn rejoins(&self) -> u64 {
        self.rejoins.load(Ordering::Relaxed)
    }

    /// The group's lag on every partition, at the last look.
    pub fn lag(&self) -> i64 {
        self.lag.load(Ordering::Relaxed)
    }
}

/// Where the group stands on one partition: (partition, committed offset, lag to the high
/// watermark).
pub type Position = (i32, i64, i64);

/// The group's position on every partition of `topic`, not only this member's partitions:
/// one held by a dead member shows up as falling behind.
pub fn group_lag<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
) -> Result<Vec<Position>, KafkaError> {
    let md = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let mut all = TopicPartitionList::new();
    for t in md.topics().iter().filter(|t| t.error().is_none()) {
        for p in t.partitions() {
            all.add_partition(topic, p.id());
        }
    }
    if all.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = consumer.committed_offsets(all, METADATA_TIMEOUT)?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), METADATA_TIMEOUT)?;
        let from = match e.offset() {
            Offset::Offset(n) => n,
            _ => low,
        };
        out.push((e.partition(), from, (high - from).max(0)));
    }
    Ok(out)
}

/// One look: this member's partition count and the group's position by partition.
pub fn look<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
) -> Result<(usize, Vec<Position>), KafkaError> {
    let assigned = consumer.assignment()?.count();
    Ok((assigned, group_lag(consumer, topic)?))
}

/// Leaves the group and joins it again, starting a new rebalance.
pub fn rejoin<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
) -> Result<(), KafkaError> {
    consumer.unsubscribe();
    consumer.subscribe(&[topic])
}

/// Looks every `every` until `stop`; after each look `seen` gets the group's lag by
/// partition (or the error), and a member starved past `patience` rejoins.
#[allow(clippy::too_many_arguments)]
pub async fn watch<C, F>(
    consumer: Arc<StreamConsumer<C>>,
    topic: String,
    every: Duration,
    patience: Duration,
    health: Arc<GroupHealth>,
    stop: CancellationToken,
    mut seen: F,
) where
    C: ConsumerContext + 'static,
    F: FnMut(Result<&[(i32, i64)], &KafkaError>) + Send,
{
    let mut clock = Watch::new(patience);
    let mut committed_before: Option<i64> = None;
    loop {
        let (c, t) = (consumer.clone(), topic.clone());
        let looked = tokio::task::spawn_blocking(move || look(&c, &t)).await;
        match looked {
            Ok(Ok((assigned, positions))) => {
                let lags: Vec<(i32, i64)> = positions.iter().map(|(p, _, l)| (*p, *l)).collect();
                let lag: i64 = lags.iter().map(|(_, l)| l).sum();
                let committed: i64 = positions.iter().map(|(_, c, _)| c).sum();
                let progressed = committed_before.is_some_and(|b| committed > b);
                committed_before = Some(committed);
                health.lag.store(lag, Ordering::Relaxed);
                seen(Ok(&lags));
                match clock.observe(assigned, lag, progressed, Instant::now()) {
                    Verdict::Serving => health.starved.store(false, Ordering::Relaxed),
                    Verdict::Starved => health.starved.store(true, Ordering::Relaxed),
                    Verdict::Rejoin => {
                        health.starved.store(true, Ordering::Relaxed);
                        health.rejoins.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            %topic, lag, waited = ?patience,
                            "holding no partitions while the group lags; rejoining the group"
                        );
                        let (c, t) = (consumer.clone(), topic.clone());
                        match tokio::task::spawn_blocking(move || rejoin(&c, &t)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::warn!(%topic, error = %e, "rejoining the group"),
                            Err(_) => return,
                        }
                    }
                }
            }
            Ok(Err(e)) => seen(Err(&e)),
            Err(_) => return, // the runtime is shutting down
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starving_past_the_patience_rejoins_and_the_clock_restarts() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = Watch::new(Duration::from_secs(20));
        assert_eq!(
            w.observe(0, 0, false, t0),
            Verdict::Serving,
            "nothing to read"
        );
        assert_eq!(
            w.observe(2, 50, false, t0),
            Verdict::Serving,
            "holding partitions"
        );
        assert_eq!(w.observe(0, 50, false, t0 + s), Verdict::Starved);
        assert_eq!(
            w.observe(0, 50, false, t0 + 20 * s),
            Verdict::Starved,
            "19 s starved"
        );
        assert_eq!(w.observe(0, 50, false, t0 + 21 * s), Verdict::Rejoin);
        assert_eq!(
            w.observe(0, 50, false, t0 + 22 * s),
            Verdict::Starved,
            "the clock restarted"
        );
        assert_eq!(w.observe(0, 50, false, t0 + 41 * s), Verdict::Rejoin);
        assert_eq!(
            w.observe(1, 50, false, t0 + 42 * s),
            Verdict::Serving,
            "partitions came back"
        );
        assert_eq!(
            w.observe(0, 50, false, t0 + 43 * s),
            Verdict::Starved,
            "a fresh clock"
        );
        // A spare member: the group lags, but another member commits.
        assert_eq!(
            w.observe(0, 50, true, t0 + 70 * s),
            Verdict::Serving,
            "another member works"
        );
        assert_eq!(
            w.observe(0, 50, false, t0 + 71 * s),
            Verdict::Starved,
            "a fresh clock again"
        );
    }
}
