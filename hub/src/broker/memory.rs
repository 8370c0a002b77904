//! The embedded engine: history, idempotency and delivery in process memory.
//!
//! Each channel's stream lives in one of several shards. Appending and delivering happen under
//! the shard lock, which is what keeps delivery in offset order per channel. A restart
//! starts new epochs, so returning clients are told honestly that they cannot recover.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chorus_protocol::frame::{ClientInfo, Data, Publication, StreamPosition};
use parking_lot::Mutex;

use crate::recovery::{continue_from, Continuation, StreamState};

use super::{
    Broker, BrokerError, BrokerEventHandler, HistoryFilter, HistoryPage, PublishOptions,
    SourceEpochs, SourcePosition,
};

const SHARDS: usize = 32;
/// Centrifugo keeps idempotent publish results for five minutes.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(300);
/// A sourced stream remembers the idempotency keys of at least this many of its latest
/// records (more with a longer history), with no time limit.
pub const RECENT_KEYS_MIN: usize = 100;

struct Stored {
    publication: Arc<Publication>,
    expires: Instant,
}

struct Stream {
    epoch: String,
    top: u64,
    items: VecDeque<Stored>,
    /// Every publication above this offset (up to `top`) is still in `items`: recovery from
    /// a position below it would have a gap.
    gap_below: u64,
    /// Positions come from the source (see `SourcePosition`), not from `top + 1`.
    sourced: bool,
    /// For a sourced stream: the lane its positions come from, once a record arrived. A
    /// stream created by a query has none, and knows nothing of earlier runs.
    lane: Option<i32>,
    /// When the stream's meta (epoch, top) may be forgotten.
    meta_expires: Instant,
    /// For a sourced stream: the idempotency keys (event ids) of its latest records, oldest
    /// first, so a repeat of one of them is dropped however late it comes (a producer that
    /// re-sent it after a crash and a long outage). Bounded by count, not time; a restart's
    /// replay of recent records rebuilds it.
    recent_keys: VecDeque<(Box<str>, u64)>,
}

impl Stream {
    fn new(now: Instant, meta_ttl: Duration) -> Self {
        Stream {
            epoch: new_epoch(),
            top: 0,
            items: VecDeque::new(),
            gap_below: 0,
            sourced: false,
            lane: None,
            meta_expires: now + meta_ttl,
            recent_keys: VecDeque::new(),
        }
    }

    /// The offset of the record that carried `key`, if it is among the latest.
    fn recent_key(&self, key: &str) -> Option<u64> {
        self.recent_keys
            .iter()
            .rev()
            .find(|(k, _)| &**k == key)
            .map(|(_, offset)| *offset)
    }

    fn remember_key(&mut self, key: &str, offset: u64, history_size: usize) {
        let keep = history_size.max(RECENT_KEYS_MIN);
        while self.recent_keys.len() >= keep {
            self.recent_keys.pop_front();
        }
        self.recent_keys.push_back((key.into(), offset));
    }

    /// A sourced stream asked about before any record: the source's epoch, no lane yet.
    fn declared(epoch: &str, now: Instant, meta_ttl: Duration) -> Self {
        Stream {
            epoch: epoch.to_owned(),
            sourced: true,
            ..Stream::new(now, meta_ttl)
        }
    }

    fn sourced(src: &SourcePosition, now: Instant, meta_ttl: Duration) -> Self {
        Stream {
            epoch: src.epoch.clone(),
            top: src.complete_after,
            items: VecDeque::new(),
            gap_below: src.complete_after,
            sourced: true,
            lane: Some(src.lane),
            meta_expires: now + meta_ttl,
            recent_keys: VecDeque::new(),
        }
    }

    fn drop_expired(&mut self, now: Instant) {
        while self.items.front().is_some_and(|s| s.expires <= now) {
            self.evict_oldest();
        }
    }

    fn trim(&mut self, size: usize) {
        while self.items.len() > size {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(gone) = self.items.pop_front() {
            self.gap_below = self.gap_below.max(gone.publication.offset);
        }
    }

    /// Appends a publication at `offset` (which the caller has checked is above `top`).
    fn append(&mut self, now: Instant, opts: &PublishOptions, publication: Arc<Publication>) {
        self.top = publication.offset;
        self.meta_expires = now + opts.history_meta_ttl;
        if opts.history_size == 0 {
            // Positions are kept (they deduplicate), publications are not.
            self.gap_below = self.top;
            return;
        }
        self.items.push_back(Stored {
            publication,
            expires: now + opts.history_ttl,
        });
        self.trim(opts.history_size);
        self.drop_expired(now);
    }
}

#[derive(Default)]
struct Shard {
    streams: HashMap<String, Stream>,
    idempotency: HashMap<(String, String), (StreamPosition, Instant)>,
    idempotency_order: VecDeque<(Instant, (String, String))>,
}

fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

pub struct MemoryBroker {
    shards: Box<[Mutex<Shard>]>,
    /// Channel prefixes whose streams a source positions, with the source's epoch.
    sources: SourceEpochs,
    handler: OnceLock<Arc<dyn BrokerEventHandler>>,
    /// Unit tests move this broker's clock forward past windows they cannot wait out.
    #[cfg(test)]
    skew: Mutex<Duration>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        MemoryBroker {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            sources: SourceEpochs::default(),
            handler: OnceLock::new(),
            #[cfg(test)]
            skew: Mutex::new(Duration::ZERO),
        }
    }
}

impl MemoryBroker {
    #[cfg(not(test))]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[cfg(test)]
    fn now(&self) -> Instant {
        Instant::now() + *self.skew.lock()
    }

    fn shard(&self, channel: &str) -> &Mutex<Shard> {
        let mut h = DefaultHasher::new();
        channel.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    fn handler(&self) -> Option<&Arc<dyn BrokerEventHandler>> {
        self.handler.get()
    }

    /// Forgets streams idle past their meta TTL; the node calls this periodically.
    pub fn purge_idle(&self) {
        let now = Instant::now();
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            s.streams.retain(|_, st| {
                st.drop_expired(now);
                st.meta_expires > now
            });
        }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn run(&self, handler: Arc<dyn BrokerEventHandler>) {
        let _ = self.handler.set(handler);
    }

    async fn publish(
        &self,
        channel: &str,
        data: Data,
        info: Option<ClientInfo>,
        tags: Option<BTreeMap<String, String>>,
        opts: &PublishOptions,
    ) -> Result<StreamPosition, BrokerError> {
        if opts.source.is_none() && self.sources.epoch_for(channel).is_some() {
            // A broker-numbered publication would take an offset the source's next record
            // needs, and that record would then be dropped as already seen.
            return Err(BrokerError::SourceOnly);
        }
        let now = self.now();
        let mut shard = self.shard(channel).lock();
        while shard
            .idempotency_order
            .front()
            .is_some_and(|(t, _)| *t <= now)
        {
            let (_, key) = shard
                .idempotency_order
                .pop_front()
                .expect("invariant: front exists");
            shard.idempotency.remove(&key);
        }
        // Sourced streams de-duplicate by position and by their recent keys (below), not by
        // a time window that a late repeat would outlast.
        let idem_key = opts
            .idempotency_key
            .as_ref()
            .filter(|_| opts.source.is_none())
            .map(|k| (channel.to_owned(), k.clone()));
        if let Some(key) = &idem_key {
            if let Some((pos, _)) = shard.idempotency.get(key) {
                return Ok(pos.clone());
            }
        }
        let mut deliver = true;
        let mut prev = 0;
        let (publication, position) = if let Some(src) = &opts.source {
            let stream = shard
                .streams
                .entry(channel.to_owned())
                .or_insert_with(|| Stream::sourced(src, now, opts.history_meta_ttl));
            // A stream that starts here has no earlier offset a subscriber could have missed.
            let mut fresh = true;
            match stream.lane {
                Some(lane) if lane == src.lane && stream.epoch == src.epoch => fresh = false,
                None if stream.sourced && stream.epoch == src.epoch => {
                    // Created by a query; from now on complete after where this run began
                    // reading. A client that saw nothing yet (offset 0) may be told it
                    // cannot recover: that errs on the safe side.
                    stream.lane = Some(src.lane);
                    stream.gap_below = stream.gap_below.max(src.complete_after);
                    stream.top = stream.top.max(src.complete_after);
                }
                Some(_) => {
                    // The channel moved to another partition (the topic was repartitioned):
                    // its offsets mean nothing here, so a new epoch nobody recovers across.
                    *stream = Stream::sourced(src, now, opts.history_meta_ttl);
                    stream.epoch = new_epoch();
                }
                None => *stream = Stream::sourced(src, now, opts.history_meta_ttl),
            }
            let position = StreamPosition {
                offset: src.offset,
                epoch: stream.epoch.clone(),
            };
            if src.offset <= stream.top {
                // Read again (after a restart or a rebalance) and already held or delivered.
                return Ok(position);
            }
            if let Some(key) = &opts.idempotency_key {
                if let Some(first) = stream.recent_key(key) {
                    // The same event produced again at a later offset: the first copy
                    // stands. The top stays where it is (the next record's predecessor is
                    // the last one delivered), and a re-read of this copy meets its key
                    // here again.
                    return Ok(StreamPosition {
                        offset: first,
                        epoch: stream.epoch.clone(),
                    });
                }
                stream.remember_key(key, src.offset, opts.history_size);
            }
            let publication = Arc::new(Publication {
                data,
                info,
                offset: src.offset,
                tags,
                delta: false,
            });
            prev = if fresh { 0 } else { stream.top };
            stream.append(now, opts, publication.clone());
            deliver = src.deliver;
            (publication, position)
        } else if opts.history_size > 0 {
            let stream = shard
                .streams
                .entry(channel.to_owned())
                .or_insert_with(|| Stream::new(now, opts.history_meta_ttl));
            prev = stream.top;
            let publication = Arc::new(Publication {
                data,
                info,
                offset: stream.top + 1,
                tags,
                delta: false,
            });
            stream.append(now, opts, publication.clone());
            (
                publication,
                StreamPosition {
                    offset: stream.top,
                    epoch: stream.epoch.clone(),
                },
            )
        } else {
            (
                Arc::new(Publication {
                    data,
                    info,
                    offset: 0,
                    tags,
                    delta: false,
                }),
                StreamPosition::default(),
            )
        };
        if let Some(key) = idem_key {
            shard
                .idempotency_order
                .push_back((now + IDEMPOTENCY_WINDOW, key.clone()));
            shard.idempotency.insert(key, (position.clone(), now));
        }
        // Delivered under the shard lock: this is what orders a channel's publications.
        if let Some(h) = self.handler().filter(|_| deliver) {
            h.on_publication(channel, &publication, prev, &position.epoch, opts.delta);
        }
        Ok(position)
    }

    async fn publish_join(&self, channel: &str, info: &ClientInfo) -> Result<(), BrokerError> {
        let _order = self.shard(channel).lock();
        if let Some(h) = self.handler() {
            h.on_join(channel, info);
        }
        Ok(())
    }

    async fn publish_leave(&self, channel: &str, info: &ClientInfo) -> Result<(), BrokerError> {
        let _order = self.shard(channel).lock();
        if let Some(h) = self.handler() {
            h.on_leave(channel, info);
        }
        Ok(())
    }

    async fn history(
        &self,
        channel: &str,
        filter: &HistoryFilter,
        meta_ttl: Duration,
    ) -> Result<HistoryPage, BrokerError> {
        let now = Instant::now();
        let declared = self.sources.epoch_for(channel);
        let mut shard = self.shard(channel).lock();
        let stream = shard
            .streams
            .entry(channel.to_owned())
            .or_insert_with(|| match &declared {
                Some(epoch) => Stream::declared(epoch, now, meta_ttl),
                None => Stream::new(now, meta_ttl),
            });
        stream.drop_expired(now);
        let mut position = StreamPosition {
            offset: stream.top,
            epoch: stream.epoch.clone(),
        };
        let after = match &filter.since {
            Some(since) => {
                let state = StreamState {
                    epoch: &stream.epoch,
                    top: stream.top,
                    gap_below: stream.gap_below,
                    sourced: stream.lane.is_some(),
                };
                match continue_from(&state, since) {
                    Continuation::After { after, top } => {
                        position.offset = top;
                        after
                    }
                    Continuation::Unrecoverable => return Err(BrokerError::Unrecoverable),
                }
            }
            None => 0,
        };
        let limit = filter.limit.unwrap_or(usize::MAX);
        let matching = stream
            .items
            .iter()
            .filter(|s| s.publication.offset > after)
            .map(|s| s.publication.clone());
        let publications: Vec<_> = if filter.reverse {
            let mut v: Vec<_> = matching.collect();
            v.reverse();
            v.truncate(limit);
            v
        } else {
            matching.take(limit).collect()
        };
        Ok(HistoryPage {
            publications,
            position,
        })
    }

    fn declare_source(&self, prefix: &str, epoch: &str) {
        self.sources.declare(prefix, epoch);
    }

    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError> {
        if let Some(s) = self.shard(channel).lock().streams.get_mut(channel) {
            s.items.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn data(s: &str) -> Data {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    fn opts(size: usize) -> PublishOptions {
        PublishOptions {
            history_size: size,
            history_ttl: Duration::from_secs(60),
            history_meta_ttl: Duration::from_secs(3600),
            idempotency_key: None,
            source: None,
            delta: false,
        }
    }

    fn sourced(size: usize, offset: u64, complete_after: u64, deliver: bool) -> PublishOptions {
        PublishOptions {
            source: Some(SourcePosition {
                epoch: "p0".into(),
                lane: 0,
                offset,
                complete_after,
                deliver,
            }),
            ..opts(size)
        }
    }

    #[tokio::test]
    async fn sourced_streams_keep_their_source_positions() {
        let b = MemoryBroker::default();
        let seen = Arc::new(Collect(Mutex::new(Vec::new())));
        b.run(seen.clone());
        let ttl = Duration::from_secs(60);
        // A restart re-reads from source offset 10: 11 and 15 are history only, 20 and 31 live.
        for (offset, deliver) in [(11, false), (15, false), (20, true), (31, true)] {
            let pos = b
                .publish(
                    "c",
                    data("1"),
                    None,
                    None,
                    &sourced(10, offset, 10, deliver),
                )
                .await
                .unwrap();
            assert_eq!((pos.offset, pos.epoch.as_str()), (offset, "p0"));
        }
        assert_eq!(
            *seen.0.lock(),
            vec![20, 31],
            "replayed records are not delivered"
        );
        // Read again after a rebalance: neither stored nor delivered twice.
        b.publish("c", data("1"), None, None, &sourced(10, 20, 10, true))
            .await
            .unwrap();
        assert_eq!(*seen.0.lock(), vec![20, 31]);
        let since = |offset: u64| HistoryFilter {
            since: Some(StreamPosition {
                offset,
                epoch: "p0".into(),
            }),
            ..Default::default()
        };
        let offsets = |page: HistoryPage| -> Vec<u64> {
            page.publications.iter().map(|p| p.offset).collect()
        };
        assert_eq!(
            offsets(b.history("c", &since(15), ttl).await.unwrap()),
            vec![20, 31]
        );
        assert_eq!(
            offsets(b.history("c", &since(12), ttl).await.unwrap()),
            vec![15, 20, 31]
        );
        assert_eq!(
            offsets(b.history("c", &since(10), ttl).await.unwrap()),
            vec![11, 15, 20, 31]
        );
        assert!(
            matches!(
                b.history("c", &since(9), ttl).await,
                Err(BrokerError::Unrecoverable)
            ),
            "before the point this run started reading: unknown, so refused"
        );
        // A client that saw record 40 before the restart is ahead of this run: nothing is
        // missing, and its position stands.
        let ahead = b.history("c", &since(40), ttl).await.unwrap();
        assert_eq!(ahead.position.offset, 40);
        assert!(ahead.publications.is_empty());
        // Eviction by size moves the gap line.
        for offset in [41, 42, 43, 44, 45, 46, 47, 48, 49, 50] {
            b.publish("c", data("1"), None, None, &sourced(10, offset, 10, true))
                .await
                .unwrap();
        }
        assert!(matches!(
            b.history("c", &since(30), ttl).await,
            Err(BrokerError::Unrecoverable)
        ));
        assert_eq!(
            offsets(b.history("c", &since(40), ttl).await.unwrap()).len(),
            10
        );
        // A broker-numbered stream never accepts a position from the future.
        b.declare_source("chat:", "t1");
        assert!(
            matches!(
                b.publish("chat:1", data("1"), None, None, &opts(10)).await,
                Err(BrokerError::SourceOnly)
            ),
            "a sourced channel takes no broker-numbered publications"
        );
        let early = b
            .history("chat:1", &HistoryFilter::default(), ttl)
            .await
            .unwrap();
        assert_eq!(
            early.position.epoch, "t1",
            "asked before any record: the source's epoch"
        );
        let from = |offset: u64| HistoryFilter {
            since: Some(StreamPosition {
                offset,
                epoch: "t1".into(),
            }),
            ..Default::default()
        };
        assert!(
            matches!(
                b.history("chat:1", &from(7), ttl).await,
                Err(BrokerError::Unrecoverable)
            ),
            "a stream that knows nothing of earlier runs cannot vouch for a client ahead of it"
        );
        let first = PublishOptions {
            source: Some(SourcePosition {
                epoch: "t1".into(),
                lane: 2,
                offset: 60,
                complete_after: 50,
                deliver: true,
            }),
            ..opts(10)
        };
        b.publish("chat:1", data("1"), None, None, &first)
            .await
            .unwrap();
        assert_eq!(
            offsets(b.history("chat:1", &from(50), ttl).await.unwrap()),
            vec![60]
        );
        assert!(matches!(
            b.history("chat:1", &from(0), ttl).await,
            Err(BrokerError::Unrecoverable)
        ));
        let moved = PublishOptions {
            source: Some(SourcePosition {
                lane: 3,
                offset: 5,
                complete_after: 0,
                ..first.source.clone().unwrap()
            }),
            ..opts(10)
        };
        let pos = b
            .publish("chat:1", data("1"), None, None, &moved)
            .await
            .unwrap();
        assert_ne!(pos.epoch, "t1", "another partition: a new epoch");
        assert_eq!(
            *seen.0.lock(),
            vec![20, 31, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 60, 5]
        );
        b.publish("d", data("1"), None, None, &opts(3))
            .await
            .unwrap();
        let epoch = b
            .history("d", &HistoryFilter::default(), ttl)
            .await
            .unwrap()
            .position
            .epoch;
        let future = HistoryFilter {
            since: Some(StreamPosition { offset: 9, epoch }),
            ..Default::default()
        };
        assert!(matches!(
            b.history("d", &future, ttl).await,
            Err(BrokerError::Unrecoverable)
        ));
    }

    struct Collect(Mutex<Vec<u64>>);
    impl BrokerEventHandler for Collect {
        fn on_publication(&self, _: &str, p: &Arc<Publication>, _: u64, _: &str, _: bool) {
            self.0.lock().push(p.offset);
        }
        fn on_join(&self, _: &str, _: &ClientInfo) {}
        fn on_leave(&self, _: &str, _: &ClientInfo) {}
    }

    #[tokio::test]
    async fn offsets_grow_and_history_is_bounded() {
        let b = MemoryBroker::default();
        let seen = Arc::new(Collect(Mutex::new(Vec::new())));
        b.run(seen.clone());
        let mut last = StreamPosition::default();
        for i in 0..5 {
            last = b
                .publish("c", data(&i.to_string()), None, None, &opts(3))
                .await
                .unwrap();
        }
        assert_eq!(last.offset, 5);
        assert_eq!(*seen.0.lock(), vec![1, 2, 3, 4, 5]);
        let page = b
            .history("c", &HistoryFilter::default(), Duration::from_secs(60))
            .await
            .unwrap();
        let offsets: Vec<u64> = page.publications.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, vec![3, 4, 5]);
        assert_eq!(page.position, last);
    }

    #[tokio::test]
    async fn recovery_is_exact_or_refused() {
        let b = MemoryBroker::default();
        let mut pos = StreamPosition::default();
        for i in 0..5 {
            pos = b
                .publish("c", data(&i.to_string()), None, None, &opts(3))
                .await
                .unwrap();
        }
        let since = |offset| HistoryFilter {
            since: Some(StreamPosition {
                offset,
                epoch: pos.epoch.clone(),
            }),
            ..Default::default()
        };
        let ttl = Duration::from_secs(60);
        let page = b.history("c", &since(3), ttl).await.unwrap();
        assert_eq!(
            page.publications
                .iter()
                .map(|p| p.offset)
                .collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert!(
            b.history("c", &since(2), ttl)
                .await
                .unwrap()
                .publications
                .len()
                == 3
        );
        assert!(
            matches!(
                b.history("c", &since(1), ttl).await,
                Err(BrokerError::Unrecoverable)
            ),
            "offset 2 is gone"
        );
        let wrong_epoch = HistoryFilter {
            since: Some(StreamPosition {
                offset: 5,
                epoch: "other".into(),
            }),
            ..Default::default()
        };
        assert!(matches!(
            b.history("c", &wrong_epoch, ttl).await,
            Err(BrokerError::Unrecoverable)
        ));
        assert!(b
            .history("c", &since(5), ttl)
            .await
            .unwrap()
            .publications
            .is_empty());
    }

    #[tokio::test]
    async fn idempotency_key_suppresses_duplicates() {
        let b = MemoryBroker::default();
        let seen = Arc::new(Collect(Mutex::new(Vec::new())));
        b.run(seen.clone());
        let o = PublishOptions {
            idempotency_key: Some("k1".into()),
            ..opts(10)
        };
        let first = b.publish("c", data("1"), None, None, &o).await.unwrap();
        let again = b.publish("c", data("1"), None, None, &o).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(seen.0.lock().len(), 1, "the retry was not delivered again");
        let other = b.publish("d", data("1"), None, None, &o).await.unwrap();
        assert_eq!(other.offset, 1, "keys are per channel");
    }

    /// A chat event produced twice (a worker that re-sent it after a crash) is delivered once
    /// however late the repeat comes: sourced streams remember their latest records' keys by
    /// count, not for a time window.
    #[tokio::test]
    async fn a_sourced_repeat_is_dropped_however_late() {
        let b = MemoryBroker::default();
        let seen = Arc::new(Collect(Mutex::new(Vec::new())));
        b.run(seen.clone());
        let keyed = |offset, key: &str| PublishOptions {
            idempotency_key: Some(key.into()),
            history_ttl: Duration::from_secs(3600),
            ..sourced(10, offset, 0, true)
        };
        b.publish("c", data("1"), None, None, &keyed(1, "e1"))
            .await
            .unwrap();
        b.publish("c", data("2"), None, None, &keyed(2, "e2"))
            .await
            .unwrap();
        // Ten minutes later (past the five-minute window) the first event comes again.
        *b.skew.lock() = Duration::from_secs(600);
        let repeat = b
            .publish("c", data("1"), None, None, &keyed(3, "e1"))
            .await
            .unwrap();
        assert_eq!(repeat.offset, 1, "the first copy's position");
        b.publish("c", data("4"), None, None, &keyed(4, "e4"))
            .await
            .unwrap();
        assert_eq!(
            *seen.0.lock(),
            vec![1, 2, 4],
            "the repeat was not delivered"
        );
        let page = b
            .history("c", &HistoryFilter::default(), Duration::from_secs(3600))
            .await
            .unwrap();
        let offsets: Vec<u64> = page.publications.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, vec![1, 2, 4], "nor stored");
        // Read again at its own offset (a consumer restart): still dropped.
        b.publish("c", data("1"), None, None, &keyed(3, "e1"))
            .await
            .unwrap();
        assert_eq!(seen.0.lock().len(), 3);
        // The memory is by count: a key older than the latest RECENT_KEYS_MIN records is
        // forgotten (its repeat would be delivered), so the bound on memory is real.
        for n in 0..RECENT_KEYS_MIN as u64 {
            let key = format!("fill{n}");
            b.publish("c", data("0"), None, None, &keyed(10 + n, &key))
                .await
                .unwrap();
        }
        let late = 10 + RECENT_KEYS_MIN as u64;
        b.publish("c", data("2"), None, None, &keyed(late, "e2"))
            .await
            .unwrap();
        assert_eq!(seen.0.lock().last(), Some(&late));
    }

    #[tokio::test]
    async fn remove_history_keeps_the_position() {
        let b = MemoryBroker::default();
        let pos = b
            .publish("c", data("1"), None, None, &opts(10))
            .await
            .unwrap();
        b.remove_history("c").await.unwrap();
        let page = b
            .history("c", &HistoryFilter::default(), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(page.publications.is_empty());
        assert_eq!(page.position, pos);
    }
}
