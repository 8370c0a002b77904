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

use super::{Broker, BrokerError, BrokerEventHandler, HistoryFilter, HistoryPage, PublishOptions};

const SHARDS: usize = 32;
/// Centrifugo keeps idempotent publish results for five minutes.
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(300);

struct Stored {
    publication: Arc<Publication>,
    expires: Instant,
}

struct Stream {
    epoch: String,
    top: u64,
    items: VecDeque<Stored>,
    /// When the stream's meta (epoch, top) may be forgotten.
    meta_expires: Instant,
}

impl Stream {
    fn new(now: Instant, meta_ttl: Duration) -> Self {
        Stream {
            epoch: new_epoch(),
            top: 0,
            items: VecDeque::new(),
            meta_expires: now + meta_ttl,
        }
    }

    fn drop_expired(&mut self, now: Instant) {
        while self.items.front().is_some_and(|s| s.expires <= now) {
            self.items.pop_front();
        }
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
    handler: OnceLock<Arc<dyn BrokerEventHandler>>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        MemoryBroker {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            handler: OnceLock::new(),
        }
    }
}

impl MemoryBroker {
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
        let now = Instant::now();
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
        let idem_key = opts
            .idempotency_key
            .as_ref()
            .map(|k| (channel.to_owned(), k.clone()));
        if let Some(key) = &idem_key {
            if let Some((pos, _)) = shard.idempotency.get(key) {
                return Ok(pos.clone());
            }
        }
        let (publication, position) = if opts.history_size > 0 {
            let stream = shard
                .streams
                .entry(channel.to_owned())
                .or_insert_with(|| Stream::new(now, opts.history_meta_ttl));
            stream.top += 1;
            stream.meta_expires = now + opts.history_meta_ttl;
            let publication = Arc::new(Publication {
                data,
                info,
                offset: stream.top,
                tags,
            });
            stream.items.push_back(Stored {
                publication: publication.clone(),
                expires: now + opts.history_ttl,
            });
            while stream.items.len() > opts.history_size {
                stream.items.pop_front();
            }
            stream.drop_expired(now);
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
        if let Some(h) = self.handler() {
            h.on_publication(channel, &publication);
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
        let mut shard = self.shard(channel).lock();
        let stream = shard
            .streams
            .entry(channel.to_owned())
            .or_insert_with(|| Stream::new(now, meta_ttl));
        stream.drop_expired(now);
        let position = StreamPosition {
            offset: stream.top,
            epoch: stream.epoch.clone(),
        };
        let after = match &filter.since {
            Some(since) => {
                if since.epoch != stream.epoch {
                    return Err(BrokerError::Unrecoverable);
                }
                let oldest = stream
                    .items
                    .front()
                    .map_or(stream.top + 1, |s| s.publication.offset);
                // Everything after `since` must still be held, else there is a gap.
                if since.offset > stream.top
                    || (since.offset + 1 < oldest && since.offset < stream.top)
                {
                    return Err(BrokerError::Unrecoverable);
                }
                since.offset
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
        }
    }

    struct Collect(Mutex<Vec<u64>>);
    impl BrokerEventHandler for Collect {
        fn on_publication(&self, _: &str, p: &Arc<Publication>) {
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
