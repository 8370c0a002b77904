//! The node-local registry: who is connected and who is subscribed to what.
//!
//! Channels are spread over shards, each behind its own lock, so fan-out on one channel does
//! not block subscribes on another. A publication is encoded once by the caller and the same
//! bytes are queued for every subscriber; there is no task per subscription.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use parking_lot::RwLock;

use crate::client::ClientHandle;
use crate::subscribers::{Subscriber, Subscribers};

const SHARDS: usize = 64;

#[derive(Default)]
struct Channel {
    subs: Subscribers,
}

type ChannelShard = RwLock<HashMap<Arc<str>, Channel>>;

pub struct Hub {
    channels: Box<[ChannelShard]>,
    clients: RwLock<HashMap<Arc<str>, Arc<ClientHandle>>>,
    users: RwLock<HashMap<Arc<str>, Vec<Arc<ClientHandle>>>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            channels: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            clients: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
        }
    }
}

impl Hub {
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
    ) {
        if syncing {
            client.begin_sync(channel.clone());
        }
        let mut shard = self.shard(channel).write();
        shard.entry(channel.clone()).or_default().subs.insert(
            client.seq,
            Subscriber {
                client: client.clone(),
                syncing,
                join_leave,
                floor: 0,
            },
        );
    }

    /// Ends the hold-back started by `subscribe(.., syncing: true)`; see `ClientHandle::finish_sync`.
    pub fn finish_sync(
        &self,
        channel: &str,
        client: &ClientHandle,
        reply: Option<Utf8Bytes>,
        top: u64,
    ) {
        // Under the write lock, so no delivery falls between the flush and the floor.
        let mut shard = self.shard(channel).write();
        client.finish_sync(channel, reply, top);
        if let Some(ch) = shard.get_mut(channel) {
            if let Some(sub) = ch.subs.get_mut(client.seq) {
                sub.syncing = false;
                sub.floor = top;
            }
        }
    }

    /// Removes a subscriber; returns true if it was subscribed.
    pub fn unsubscribe(&self, channel: &str, client: &ClientHandle) -> bool {
        let mut shard = self.shard(channel).write();
        let Some(ch) = shard.get_mut(channel) else {
            return false;
        };
        let removed = ch.subs.remove(client.seq);
        if ch.subs.is_empty() {
            shard.remove(channel);
        }
        removed
    }

    /// Queues a publication frame for every subscriber; returns how many it reached.
    pub fn broadcast(&self, channel: &str, offset: u64, frame: &Utf8Bytes) -> usize {
        let shard = self.shard(channel).read();
        let Some(ch) = shard.get(channel) else {
            return 0;
        };
        for sub in ch.subs.values() {
            if offset != 0 && offset <= sub.floor {
                continue;
            }
            if sub.syncing {
                sub.client.send_syncing(channel, offset, frame.clone());
            } else {
                sub.client.send(frame.clone());
            }
        }
        ch.subs.len()
    }

    /// Queues a join or leave frame for the subscribers that asked for them.
    pub fn broadcast_join_leave(&self, channel: &str, frame: &Utf8Bytes) -> usize {
        let shard = self.shard(channel).read();
        let Some(ch) = shard.get(channel) else {
            return 0;
        };
        let mut n = 0;
        for sub in ch.subs.values().filter(|s| s.join_leave) {
            if sub.syncing {
                sub.client.send_syncing(channel, 0, frame.clone());
            } else {
                sub.client.send(frame.clone());
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
                    Some(f.to_string())
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn broadcast_reaches_each_subscriber_once() {
        let hub = Hub::default();
        let ch: Arc<str> = "news".into();
        let (a, b) = (client("a"), client("b"));
        hub.subscribe(&ch, &a, false, false);
        hub.subscribe(&ch, &b, false, false);
        assert_eq!(hub.broadcast("news", 1, &Utf8Bytes::from("p1")), 2);
        assert_eq!(frames(&a), vec!["p1"]);
        assert!(hub.unsubscribe("news", &a));
        hub.broadcast("news", 2, &Utf8Bytes::from("p2"));
        assert!(frames(&a).is_empty());
        assert_eq!(frames(&b), vec!["p1", "p2"]);
        hub.unsubscribe("news", &b);
        assert!(hub.channels().is_empty(), "an empty channel is dropped");
    }

    #[test]
    fn syncing_subscriber_gets_reply_first_and_no_duplicates() {
        let hub = Hub::default();
        let ch: Arc<str> = "c".into();
        let a = client("a");
        hub.subscribe(&ch, &a, false, true);
        // Offsets 5 and 6 arrive while the subscribe reply (recovered up to 5) is being built.
        hub.broadcast("c", 5, &Utf8Bytes::from("p5"));
        hub.broadcast("c", 6, &Utf8Bytes::from("p6"));
        assert!(frames(&a).is_empty(), "held back until the reply is queued");
        hub.finish_sync("c", &a, Some(Utf8Bytes::from("reply")), 5);
        hub.broadcast("c", 7, &Utf8Bytes::from("p7"));
        assert_eq!(frames(&a), vec!["reply", "p6", "p7"]);
    }
}
