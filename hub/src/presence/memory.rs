//! Presence in process memory, sharded by channel.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use async_trait::async_trait;
use chorus_protocol::frame::ClientInfo;
use parking_lot::Mutex;

use super::{PresenceError, PresenceManager};

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<String, HashMap<String, ClientInfo>>>;

pub struct MemoryPresence {
    shards: Box<[Shard]>,
}

impl Default for MemoryPresence {
    fn default() -> Self {
        MemoryPresence {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl MemoryPresence {
    fn shard(&self, channel: &str) -> &Shard {
        let mut h = DefaultHasher::new();
        channel.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }
}

#[async_trait]
impl PresenceManager for MemoryPresence {
    async fn add(&self, channel: &str, info: &ClientInfo) -> Result<(), PresenceError> {
        self.shard(channel)
            .lock()
            .entry(channel.to_owned())
            .or_default()
            .insert(info.client.clone(), info.clone());
        Ok(())
    }

    async fn remove(&self, channel: &str, client: &str) -> Result<(), PresenceError> {
        let mut shard = self.shard(channel).lock();
        if let Some(m) = shard.get_mut(channel) {
            m.remove(client);
            if m.is_empty() {
                shard.remove(channel);
            }
        }
        Ok(())
    }

    async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, PresenceError> {
        let shard = self.shard(channel).lock();
        Ok(shard
            .get(channel)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn stats(&self, channel: &str) -> Result<(u32, u32), PresenceError> {
        let shard = self.shard(channel).lock();
        let Some(m) = shard.get(channel) else {
            return Ok((0, 0));
        };
        let users: HashSet<&str> = m.values().map(|i| i.user.as_str()).collect();
        Ok((m.len() as u32, users.len() as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(client: &str, user: &str) -> ClientInfo {
        ClientInfo {
            client: client.into(),
            user: user.into(),
            conn_info: None,
            chan_info: None,
        }
    }

    #[tokio::test]
    async fn tracks_clients_and_unique_users() {
        let p = MemoryPresence::default();
        p.add("c", &info("1", "ann")).await.unwrap();
        p.add("c", &info("2", "ann")).await.unwrap();
        p.add("c", &info("3", "bob")).await.unwrap();
        assert_eq!(p.stats("c").await.unwrap(), (3, 2));
        p.remove("c", "1").await.unwrap();
        assert_eq!(
            p.presence("c")
                .await
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>(),
            vec!["2", "3"]
        );
        p.remove("c", "2").await.unwrap();
        p.remove("c", "3").await.unwrap();
        assert_eq!(p.stats("c").await.unwrap(), (0, 0));
    }
}
