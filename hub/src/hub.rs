//! The node-local registry: who is connected and who is subscribed to what.
//!
//! Channels are spread over shards, each behind its own lock, so fan-out on one channel does
//! not block subscribes on another. A publication is encoded once by the caller and the same
//! bytes are queued for every subscriber; there is no task per subscription.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chorus_protocol::codes::DISCONNECT_INSUFFICIENT_STATE;
use chorus_protocol::filter::FilterNode;
use chorus_protocol::frame::Publication;
use parking_lot::RwLock;

use crate::client::frame::Shared;
use crate::client::{ClientHandle, Frame};
use crate::subscribers::{Subscriber, Subscribers};

const SHARDS: usize = 64;

#[derive(Default)]
struct Channel {
    subs: Subscribers,
    /// The stream epoch positioned subscribers hold; a publication from another epoch
    /// means the stream was lost (Redis restarted empty) and they must resync.
    epoch: Option<Arc<str>>,
    /// Subscribers that negotiated delta compression.
    delta_subs: u32,
    /// The last publication broadcast, the base of the next delta: kept only while the
    /// channel has delta subscribers, one per channel however many there are.
    prev: parking_lot::Mutex<Option<Arc<Publication>>>,
}

type ChannelShard = RwLock<HashMap<Arc<str>, Channel>>;

pub struct Hub {
    channels: Box<[ChannelShard]>,
    clients: RwLock<HashMap<Arc<str>, Arc<ClientHandle>>>,
    users: RwLock<HashMap<Arc<str>, Vec<Arc<ClientHandle>>>>,
    /// Times the deliveries the fan-out writes to sockets itself (the connection tasks time
    /// the rest into the same histogram).
    delivered: Option<prometheus::Histogram>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            channels: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            clients: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            delivered: None,
        }
    }
}

impl Hub {
    /// A hub that records its direct deliveries in `delivered`.
    pub fn timing_into(delivered: prometheus::Histogram) -> Self {
        Hub {
            delivered: Some(delivered),
            ..Hub::default()
        }
    }

    fn shard(&self, channel: &str) -> &ChannelShard {
        let mut h = DefaultHasher::new();
        channel.hash(&mut h);
        &self.channels[(h.finish() as usize) % SHARDS]
    }

    pub fn add_client(&self, c: &Arc<ClientHandle>) {
        self.clients.write().insert(c.id.clone(), c.clone());
        self.users
            .write()
            .entry(c.user_arc())
            .or_default()
            .push(c.clone());
    }

    pub fn remove_client(&self, c: &ClientHandle) {
        self.clients.write().remove(&c.id);
        let mut users = self.users.write();
        if let Some(list) = users.get_mut(c.user()) {
            list.retain(|x| x.seq != c.seq);
            if list.is_empty() {
                users.remove(c.user());
            }
        }
    }

    pub fn user_clients(&self, user: &str) -> Vec<Arc<ClientHandle>> {
        self.users.read().get(user).cloned().unwrap_or_default()
    }

    /// Bytes waiting in every client's outbound queue: one lock per client, taken at scrape
    /// time rather than an atomic on every push.
    pub fn queued_bytes(&self) -> usize {
        let clients: Vec<_> = self.clients.read().values().cloned().collect();
        clients.iter().map(|c| c.queued_bytes()).sum()
    }

    pub fn num_clients(&self) -> usize {
        self.clients.read().len()
    }

    pub fn num_users(&self) -> usize {
        self.users.read().len()
    }

    /// Adds a subscriber; with `syncing`, deliveries are held back until [`Hub::finish_sync`].
    pub fn subscribe(
        &self,
        channel: &Arc<str>,
        client: &Arc<ClientHandle>,
        join_leave: bool,
        syncing: bool,
        delta: bool,
        filter: Option<Arc<FilterNode>>,
    ) {
        if syncing {
            client.begin_sync(channel.clone());
        }
        let mut shard = self.shard(channel).write();
        let ch = shard.entry(channel.clone()).or_default();
        let replaced = ch.subs.get_mut(client.seq).is_some_and(|s| s.delta);
        ch.subs.insert(
            client.seq,
            Subscriber {
                client: client.clone(),
                syncing,
                join_leave,
                positioned: false,
                delta,
                delta_ready: AtomicBool::new(false),
                floor: AtomicU64::new(0),
                behind: AtomicU64::new(0),
                filter,
            },
        );
        ch.delta_subs = ch.delta_subs - u32::from(replaced) + u32::from(delta);
    }

    /// Ends the hold-back started by `subscribe(.., syncing: true)`; see
    /// `ClientHandle::finish_sync`. `epoch` is the stream's for a positioned subscription.
    pub fn finish_sync(
        &self,
        channel: &str,
        client: &ClientHandle,
        reply: Option<Frame>,
        top: u64,
        epoch: Option<&str>,
    ) {
        // Under the write lock, so no delivery falls between the flush and the floor.
        let mut shard = self.shard(channel).write();
        let held = client.finish_sync(channel, reply, top);
        let Some(ch) = shard.get_mut(channel) else {
            return;
        };
        if let Some(epoch) = epoch {
            if ch.epoch.as_deref().is_some_and(|e| e != epoch) {
                // The stream started over since the others subscribed: what they hold is
                // from a stream that no longer exists.
                resync(&ch.subs, client.seq);
            }
            ch.epoch = Some(epoch.into());
        }
        if let Some(sub) = ch.subs.get_mut(client.seq) {
            sub.syncing = false;
            sub.positioned = epoch.is_some();
            *sub.floor.get_mut() = held;
        }
    }

    /// Compares what positioned subscribers hold with the stream's current position and makes
    /// each that missed something resync; a stream of another epoch always does. `at_once`:
    /// right after the broker's link was broken, any subscriber behind the top. Otherwise (the
    /// periodic check) only one behind at two checks in a row holding the same offset: once
    /// may just be a publication in flight, while a lost last publication stays behind. Returns
    /// how many were made to recover.
    pub fn check_position(&self, channel: &str, top: u64, epoch: &str, at_once: bool) -> usize {
        let shard = self.shard(channel).read();
        let Some(ch) = shard.get(channel) else {
            return 0;
        };
        let stale_epoch = ch.epoch.as_deref().is_some_and(|e| e != epoch);
        let mut n = 0;
        for sub in ch.subs.values().filter(|s| s.positioned && !s.syncing) {
            let floor = sub.floor.load(Ordering::Relaxed);
            let missed = if stale_epoch {
                true
            } else if floor >= top {
                sub.behind.store(0, Ordering::Relaxed);
                false
            } else {
                at_once || sub.behind.swap(floor + 1, Ordering::Relaxed) == floor + 1
            };
            if missed {
                sub.client.disconnect(DISCONNECT_INSUFFICIENT_STATE);
                n += 1;
            }
        }
        n
    }

    /// Channels with positioned subscribers on this node.
    pub fn positioned_channels(&self) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        for shard in self.channels.iter() {
            out.extend(
                shard
                    .read()
                    .iter()
                    .filter(|(_, c)| c.epoch.is_some())
                    .map(|(k, _)| k.clone()),
            );
        }
        out
    }

    /// Removes a subscriber; returns true if it was subscribed.
    pub fn unsubscribe(&self, channel: &str, client: &ClientHandle) -> bool {
        let mut shard = self.shard(channel).write();
        let Some(ch) = shard.get_mut(channel) else {
            return false;
        };
        let was_delta = ch.subs.get_mut(client.seq).is_some_and(|s| s.delta);
        let removed = ch.subs.remove(client.seq);
        if was_delta {
            ch.delta_subs -= 1;
            if ch.delta_subs == 0 {
                *ch.prev.get_mut() = None;
            }
        }
        if ch.subs.is_empty() {
            shard.remove(channel);
        }
        removed
    }

    /// Queues a publication frame for every subscriber; returns how many it reached.
    ///
    /// `prev` is the stream's offset before this publication (0 when unknown) and `epoch`
    /// its epoch: a positioned subscriber holding less than `prev`, or another epoch, missed
    /// a publication and is disconnected to recover (Centrifugo's "insufficient state").
    /// Publications for one channel arrive one at a time, in offset order. `reached` is when
    /// the publication reached this node, for the delivery-latency histogram.
    pub fn broadcast(
        &self,
        channel: &str,
        offset: u64,
        prev: u64,
        epoch: &str,
        frames: &Shared,
        reached: Instant,
    ) -> usize {
        let shard = self.shard(channel).read();
        let Some(ch) = shard.get(channel) else {
            return 0;
        };
        let stale_epoch = offset != 0 && ch.epoch.as_deref().is_some_and(|e| e != epoch);
        let base = if ch.delta_subs > 0 {
            ch.prev.lock().clone()
        } else {
            None
        };
        let tags = frames.publication().and_then(|p| p.tags.as_ref());
        // Observed without atomics per delivery; added to the histogram once, on drop.
        let delivered = self.delivered.as_ref().map(|h| h.local());
        for sub in ch.subs.values() {
            let p = sub.client.protocol;
            let passes = sub.filter.as_ref().is_none_or(|f| f.matches(tags));
            if sub.syncing {
                let frame = if !passes {
                    None
                } else if sub.delta {
                    Some(frames.get_delta(p, None))
                } else {
                    Some(frames.get(p))
                };
                sub.client.send_syncing(channel, offset, frame);
                continue;
            }
            if offset != 0 {
                let held = sub.floor.load(Ordering::Relaxed);
                if sub.positioned && (stale_epoch || prev > held) {
                    sub.client.disconnect(DISCONNECT_INSUFFICIENT_STATE);
                    continue;
                }
                if offset <= held {
                    // It has this one from its subscribe reply: the next goes whole.
                    sub.delta_ready.store(false, Ordering::Relaxed);
                    continue;
                }
                if sub.positioned {
                    sub.floor.store(offset, Ordering::Relaxed);
                }
            }
            if !passes {
                continue;
            }
            if sub.delta {
                let ready = sub.delta_ready.swap(true, Ordering::Relaxed);
                let frame = frames.get_delta(p, base.as_deref().filter(|_| ready));
                sub.client.send_publication(frame, reached);
            } else {
                sub.client.send_shared(frames, reached, delivered.as_ref());
            }
        }
        if ch.delta_subs > 0 {
            if let Some(publication) = frames.publication() {
                *ch.prev.lock() = Some(publication.clone());
            }
        }
        ch.subs.len()
    }

    /// Queues a join or leave frame for the subscribers that asked for them.
    pub fn broadcast_join_leave(&self, channel: &str, frames: &Shared) -> usize {
        let shard = self.shard(channel).read();
        let Some(ch) = shard.get(channel) else {
            return 0;
        };
        let mut n = 0;
        for sub in ch.subs.values().filter(|s| s.join_leave) {
            let frame = frames.get(sub.client.protocol);
            if sub.syncing {
                sub.client.send_syncing(channel, 0, Some(frame));
            } else {
                sub.client.send(frame);
            }
            n += 1;
        }
        n
    }

    pub fn num_subscribers(&self, channel: &str) -> usize {
        self.shard(channel)
            .read()
            .get(channel)
            .map_or(0, |c| c.subs.len())
    }

    /// Every channel with local subscribers, and how many.
    pub fn channels(&self) -> Vec<(Arc<str>, usize)> {
        let mut out = Vec::new();
        for shard in self.channels.iter() {
            out.extend(shard.read().iter().map(|(k, v)| (k.clone(), v.subs.len())));
        }
        out
    }

    pub fn num_subscriptions(&self) -> usize {
        self.channels
            .iter()
            .map(|s| s.read().values().map(|c| c.subs.len()).sum::<usize>())
            .sum()
    }
}

/// Disconnects every positioned subscriber but `except` so it resyncs.
fn resync(subs: &Subscribers, except: u64) {
    for sub in subs
        .values()
        .filter(|s| s.positioned && s.client.seq != except)
    {
        sub.client.disconnect(DISCONNECT_INSUFFICIENT_STATE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::queue::Out;

    fn client(id: &str) -> Arc<ClientHandle> {
        Arc::new(ClientHandle::new(id.into(), 1 << 20))
    }

    fn frames(c: &ClientHandle) -> Vec<String> {
        c.take_queued()
            .into_items()
            .filter_map(|o| {
                if let Out::Frame(f) = o {
                    Some(String::from_utf8_lossy(f.as_bytes()).into_owned())
                } else {
                    None
                }
            })
            .collect()
    }

    fn closed(c: &ClientHandle) -> Option<chorus_protocol::codes::Disconnect> {
        let taken = c.take_queued();
        assert!(taken.is_empty(), "nothing delivered");
        taken.closed
    }

    #[test]
    fn broadcast_reaches_each_subscriber_once() {
        let hub = Hub::default();
        let ch: Arc<str> = "news".into();
        let (a, b) = (client("a"), client("b"));
        hub.subscribe(&ch, &a, false, false, false, None);
        hub.subscribe(&ch, &b, false, false, false, None);
        assert_eq!(
            hub.broadcast(
                "news",
                1,
                0,
                "",
                &Shared::new(&|_| Frame::from("p1")),
                Instant::now()
            ),
            2
        );
        assert_eq!(frames(&a), vec!["p1"]);
        assert!(hub.unsubscribe("news", &a));
        hub.broadcast(
            "news",
            2,
            0,
            "",
            &Shared::new(&|_| Frame::from("p2")),
            Instant::now(),
        );
        assert!(frames(&a).is_empty());
        assert_eq!(frames(&b), vec!["p1", "p2"]);
        hub.unsubscribe("news", &b);
        assert!(hub.channels().is_empty(), "an empty channel is dropped");
    }

    #[test]
    fn each_protocol_gets_its_own_encoding_made_once() {
        use chorus_protocol::Protocol;
        let hub = Hub::default();
        let ch: Arc<str> = "news".into();
        let json = [client("j1"), client("j2")];
        let proto: Vec<_> = (0..2)
            .map(|i| {
                Arc::new(ClientHandle::speaking(
                    format!("p{i}").into(),
                    1 << 20,
                    Protocol::Protobuf,
                ))
            })
            .collect();
        for c in json.iter().chain(&proto) {
            hub.subscribe(&ch, c, false, false, false, None);
        }
        let calls = std::cell::Cell::new(0);
        let encode = |p: Protocol| {
            calls.set(calls.get() + 1);
            match p {
                Protocol::Json => Frame::from("json"),
                Protocol::Protobuf => Frame::Binary(bytes::Bytes::from_static(b"\x01\x02")),
            }
        };
        let shared = Shared::new(&encode);
        assert_eq!(hub.broadcast("news", 1, 0, "", &shared, Instant::now()), 4);
        assert_eq!(
            calls.get(),
            2,
            "one encoding per protocol, not per subscriber"
        );
        for c in &json {
            assert_eq!(frames(c), vec!["json"]);
        }
        for c in &proto {
            assert_eq!(frames(c), vec!["\u{1}\u{2}"]);
        }
    }

    #[test]
    fn delta_subscribers_get_fossil_deltas_against_the_previous_publication() {
        use chorus_protocol::Protocol;
        use serde_json::value::RawValue;
        let hub = Hub::default();
        let ch: Arc<str> = "doc".into();
        let plain = client("plain");
        let json = client("json");
        let proto = Arc::new(ClientHandle::speaking(
            "proto".into(),
            1 << 20,
            Protocol::Protobuf,
        ));
        hub.subscribe(&ch, &plain, false, false, false, None);
        hub.subscribe(&ch, &json, false, false, true, None);
        hub.subscribe(&ch, &proto, false, false, true, None);
        let doc = |n: u64| {
            let body = format!(
                r#"{{"title":"a slowly changing document","body":"{}","version":{n}}}"#,
                "x".repeat(200)
            );
            Arc::new(Publication {
                data: RawValue::from_string(body).unwrap(),
                info: None,
                offset: n,
                tags: None,
                delta: false,
            })
        };
        let docs: Vec<_> = (1..=3).map(doc).collect();
        for p in &docs {
            let encode = |pr| crate::client::frame::push(pr, "doc", "pub", &**p);
            let frames = Shared::new(&encode).with_delta("doc", p, true);
            hub.broadcast("doc", p.offset, p.offset - 1, "", &frames, Instant::now());
        }
        let plain_pubs: Vec<serde_json::Value> = frames(&plain)
            .iter()
            .map(|f| serde_json::from_str::<serde_json::Value>(f).unwrap()["push"]["pub"].clone())
            .collect();
        assert!(plain_pubs
            .iter()
            .all(|p| p["data"].is_object() && p.get("delta").is_none()));
        // JSON: every data is a string; the first whole, the next two deltas that apply.
        let json_pubs: Vec<serde_json::Value> = frames(&json)
            .iter()
            .map(|f| serde_json::from_str::<serde_json::Value>(f).unwrap()["push"]["pub"].clone())
            .collect();
        assert_eq!(json_pubs[0].get("delta"), None);
        let mut value = json_pubs[0]["data"].as_str().unwrap().as_bytes().to_vec();
        assert_eq!(value, docs[0].data.get().as_bytes());
        for (i, p) in json_pubs.iter().enumerate().skip(1) {
            assert_eq!(p["delta"], true, "publication {i} as a delta");
            let delta = p["data"].as_str().unwrap().as_bytes();
            assert!(
                delta.len() < docs[i].data.get().len() / 4,
                "a small delta: {}",
                delta.len()
            );
            value = chorus_protocol::fossil::apply(&value, delta).unwrap();
            assert_eq!(value, docs[i].data.get().as_bytes());
        }
        // Protobuf: the same, in bytes.
        let proto_frames: Vec<_> = proto
            .take_queued()
            .into_items()
            .filter_map(|o| match o {
                Out::Frame(Frame::Binary(b)) => Some(b),
                _ => None,
            })
            .collect();
        let mut value = Vec::new();
        for (i, b) in proto_frames.iter().enumerate() {
            use prost::Message;
            let reply =
                chorus_protocol::proto::client::Reply::decode_length_delimited(&b[..]).unwrap();
            let publication = reply.push.unwrap().r#pub.unwrap();
            assert_eq!(publication.delta, i > 0);
            value = if publication.delta {
                chorus_protocol::fossil::apply(&value, &publication.data).unwrap()
            } else {
                publication.data.to_vec()
            };
            assert_eq!(value, docs[i].data.get().as_bytes());
        }
        // The base is one per channel, and gone with the last delta subscriber.
        assert!(hub.unsubscribe("doc", &json) && hub.unsubscribe("doc", &proto));
        assert!(hub
            .shard("doc")
            .read()
            .get("doc")
            .unwrap()
            .prev
            .lock()
            .is_none());
    }

    #[test]
    fn a_tags_filter_skips_publications_without_leaving_a_gap() {
        let hub = Hub::default();
        let ch: Arc<str> = "c".into();
        let (all, some) = (client("all"), client("some"));
        let only_a = FilterNode {
            key: "kind".into(),
            cmp: "eq".into(),
            val: "a".into(),
            ..Default::default()
        };
        hub.subscribe(&ch, &all, false, true, false, None);
        hub.subscribe(&ch, &some, false, true, false, Some(Arc::new(only_a)));
        let publish = |offset: u64, kind: &str| {
            let p = Arc::new(Publication {
                data: serde_json::value::RawValue::from_string(format!("{offset}")).unwrap(),
                info: None,
                offset,
                tags: Some([("kind".to_owned(), kind.to_owned())].into()),
                delta: false,
            });
            let name = format!("{kind}{offset}");
            let encode = |_| Frame::from(name.clone());
            let frames = Shared::new(&encode).with_delta("c", &p, false);
            hub.broadcast("c", offset, offset - 1, "e", &frames, Instant::now());
        };
        // While subscribing: b2 is held back for one, skipped for the other.
        publish(2, "b");
        hub.finish_sync("c", &all, None, 1, Some("e"));
        hub.finish_sync("c", &some, None, 1, Some("e"));
        for (offset, kind) in [(3, "a"), (4, "b"), (5, "b"), (6, "a")] {
            publish(offset, kind);
        }
        assert_eq!(frames(&all), vec!["b2", "a3", "b4", "b5", "a6"]);
        // No disconnect for the skipped ones: the filtered subscriber's position moved on.
        assert_eq!(frames(&some), vec!["a3", "a6"]);
        assert_eq!(hub.check_position("c", 6, "e", true), 0);
    }

    #[test]
    fn syncing_subscriber_gets_reply_first_and_no_duplicates() {
        let hub = Hub::default();
        let ch: Arc<str> = "c".into();
        let a = client("a");
        hub.subscribe(&ch, &a, false, true, false, None);
        // Offsets 5 and 6 arrive while the subscribe reply (recovered up to 5) is being built.
        hub.broadcast(
            "c",
            5,
            4,
            "e",
            &Shared::new(&|_| Frame::from("p5")),
            Instant::now(),
        );
        hub.broadcast(
            "c",
            6,
            5,
            "e",
            &Shared::new(&|_| Frame::from("p6")),
            Instant::now(),
        );
        assert!(frames(&a).is_empty(), "held back until the reply is queued");
        hub.finish_sync("c", &a, Some(Frame::from("reply")), 5, Some("e"));
        hub.broadcast(
            "c",
            7,
            6,
            "e",
            &Shared::new(&|_| Frame::from("p7")),
            Instant::now(),
        );
        assert_eq!(frames(&a), vec!["reply", "p6", "p7"]);
    }

    #[test]
    fn a_positioned_subscriber_that_missed_a_publication_is_made_to_recover() {
        let hub = Hub::default();
        let ch: Arc<str> = "c".into();
        let (a, b) = (client("a"), client("b"));
        hub.subscribe(&ch, &a, false, true, false, None);
        hub.finish_sync("c", &a, None, 3, Some("e1"));
        hub.subscribe(&ch, &b, false, true, false, None);
        hub.finish_sync("c", &b, None, 0, None);
        hub.broadcast(
            "c",
            4,
            3,
            "e1",
            &Shared::new(&|_| Frame::from("p4")),
            Instant::now(),
        );
        assert_eq!(frames(&a), vec!["p4"]);
        assert_eq!(closed(&a), None);
        // Offset 5 was lost on the way to this node: 6 arrives with prev 5.
        hub.broadcast(
            "c",
            6,
            5,
            "e1",
            &Shared::new(&|_| Frame::from("p6")),
            Instant::now(),
        );
        assert_eq!(
            closed(&a),
            Some(DISCONNECT_INSUFFICIENT_STATE),
            "no silent gap: told to reconnect and recover"
        );
        assert_eq!(
            frames(&b),
            vec!["p4", "p6"],
            "unpositioned: delivered as it comes"
        );

        let c = client("c");
        hub.subscribe(&ch, &c, false, true, false, None);
        hub.finish_sync("c", &c, None, 6, Some("e1"));
        // Redis restarted empty: a new epoch starting at offset 1.
        hub.broadcast(
            "c",
            1,
            0,
            "e2",
            &Shared::new(&|_| Frame::from("q1")),
            Instant::now(),
        );
        assert_eq!(
            closed(&c),
            Some(DISCONNECT_INSUFFICIENT_STATE),
            "another epoch: the client must resync"
        );
        let other: Arc<str> = "d".into();
        let d = client("d");
        hub.subscribe(&other, &d, false, true, false, None);
        hub.finish_sync("d", &d, None, 9, Some("e1"));
        assert_eq!(hub.check_position("d", 9, "e1", true), 0, "holds the top");
        assert_eq!(
            hub.check_position("d", 10, "e1", false),
            0,
            "behind once: maybe in flight"
        );
        assert_eq!(
            hub.check_position("d", 10, "e1", false),
            1,
            "behind twice at 9: missed the tail"
        );
        assert_eq!(
            hub.check_position("d", 10, "e1", true),
            1,
            "missed the tail"
        );
        let e = client("e");
        hub.subscribe(&other, &e, false, true, false, None);
        hub.finish_sync("d", &e, None, 9, Some("e1"));
        assert_eq!(
            hub.check_position("d", 9, "e2", false),
            2,
            "another epoch: the periodic check resyncs both at once, not on a second check"
        );
    }
}
