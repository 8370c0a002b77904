//! Presence in Redis, shared by every node.
//!
//! Each entry carries an expiry. A node re-announces its own entries every
//! `client.presence_update_interval`, so the entries of a node killed without a goodbye
//! expire within `engine.redis.presence_ttl`. A per-channel count of clients per user keeps
//! `presence_stats` to two `HLEN`s however many clients are present.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chorus_protocol::frame::ClientInfo;
use fred::prelude::*;
use fred::types::scripts::Script;
use parking_lot::Mutex;

use super::{PresenceError, PresenceManager};
use crate::redis_link::{text, RedisLink};

const ADD: &str = include_str!("lua/add.lua");
const CLEAN: &str = include_str!("lua/clean.lua");
/// Entries re-announced per script call, so one refresh never blocks Redis for long.
const REFRESH_BATCH: usize = 500;

/// One presence entry: channel, client id, ClientInfo JSON.
type Entry = (String, String, String);

pub struct RedisPresence {
    link: Arc<RedisLink>,
    ttl: Duration,
    add: Script,
    clean: Script,
    /// This node's entries, (channel, client) -> info JSON: what the refresher re-announces.
    own: Mutex<HashMap<(String, String), String>>,
}

fn failed(e: fred::error::Error) -> PresenceError {
    PresenceError(e.to_string())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RedisPresence {
    /// Starts the refresher, which lives as long as the presence manager.
    pub fn new(link: Arc<RedisLink>, ttl: Duration, refresh: Duration) -> Arc<Self> {
        let presence = Arc::new(RedisPresence {
            link,
            ttl,
            add: Script::from_lua(ADD),
            clean: Script::from_lua(CLEAN),
            own: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&presence);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(refresh);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(p) = weak.upgrade() else { return };
                if let Err(e) = p.refresh().await {
                    tracing::warn!(error = %e, "presence refresh failed; retrying next interval");
                }
            }
        });
        presence
    }

    /// Re-announces every entry of this node (also how presence returns after Redis lost it).
    pub async fn refresh(&self) -> Result<(), PresenceError> {
        let entries: Vec<Entry> = self
            .own
            .lock()
            .iter()
            .map(|((ch, client), info)| (ch.clone(), client.clone(), info.clone()))
            .collect();
        // One script call touches one shard, and on a cluster one slot: entries grouped so
        // (channels whose tags hash to the same slot still share a call).
        let mut groups: HashMap<(usize, u16), Vec<Entry>> = HashMap::new();
        for entry in entries {
            let shard = crate::placement::shard_of(&entry.0, self.link.shards.len());
            let slot = if self.link.cluster {
                fred::util::redis_keyslot(crate::placement::hash_tag(&entry.0).as_bytes())
            } else {
                0
            };
            groups.entry((shard, slot)).or_default().push(entry);
        }
        for group in groups.values() {
            for chunk in group.chunks(REFRESH_BATCH) {
                self.announce(chunk).await?;
            }
        }
        Ok(())
    }

    /// Announces entries that share one shard (and slot).
    async fn announce(&self, entries: &[Entry]) -> Result<(), PresenceError> {
        let Some((first, _, _)) = entries.first() else {
            return Ok(());
        };
        let mut keys: Vec<String> = Vec::with_capacity(entries.len() * 3);
        let mut args: Vec<Value> = Vec::with_capacity(2 + entries.len() * 2);
        args.push((now_ms() + self.ttl.as_millis() as u64).to_string().into());
        args.push((self.ttl.as_secs().max(1) as i64).into());
        for (ch, client, info) in entries {
            keys.extend(self.keys(ch));
            args.push(client.clone().into());
            args.push(info.clone().into());
        }
        self.add
            .evalsha_with_reload::<(), _, _>(self.link.shard(first).pool.next(), keys, args)
            .await
            .map_err(failed)
    }

    fn keys(&self, channel: &str) -> [String; 3] {
        [
            self.link.channel_key("presence.data", channel),
            self.link.channel_key("presence.expire", channel),
            self.link.channel_key("presence.users", channel),
        ]
    }

    async fn clean(
        &self,
        channel: &str,
        remove: &str,
        answer: &str,
    ) -> Result<Value, PresenceError> {
        let keys = self.keys(channel).to_vec();
        let args: Vec<Value> = vec![now_ms().to_string().into(), remove.into(), answer.into()];
        self.clean
            .evalsha_with_reload(self.link.shard(channel).pool.next(), keys, args)
            .await
            .map_err(failed)
    }
}

#[async_trait]
impl PresenceManager for RedisPresence {
    async fn add(&self, channel: &str, info: &ClientInfo) -> Result<(), PresenceError> {
        let json = serde_json::to_string(info).expect("invariant: client info serializes");
        // Registered first: if Redis is down now, the next refresh still announces it.
        self.own
            .lock()
            .insert((channel.to_owned(), info.client.clone()), json.clone());
        self.announce(&[(channel.to_owned(), info.client.clone(), json)])
            .await
    }

    async fn remove(&self, channel: &str, client: &str) -> Result<(), PresenceError> {
        self.own
            .lock()
            .remove(&(channel.to_owned(), client.to_owned()));
        self.clean(channel, client, "none").await.map(|_| ())
    }

    async fn presence(&self, channel: &str) -> Result<BTreeMap<String, ClientInfo>, PresenceError> {
        let Value::Array(flat) = self.clean(channel, "", "all").await? else {
            return Ok(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        for pair in flat.chunks(2) {
            let (Some(client), Some(info)) =
                (pair.first().and_then(text), pair.get(1).and_then(text))
            else {
                continue;
            };
            match serde_json::from_str::<ClientInfo>(&info) {
                Ok(info) => {
                    out.insert(client, info);
                }
                Err(e) => tracing::warn!(%channel, error = %e, "unreadable presence entry"),
            }
        }
        Ok(out)
    }

    async fn stats(&self, channel: &str) -> Result<(u32, u32), PresenceError> {
        let Value::Array(counts) = self.clean(channel, "", "stats").await? else {
            return Ok((0, 0));
        };
        let n = |i: usize| counts.get(i).and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        Ok((n(0), n(1)))
    }
}
