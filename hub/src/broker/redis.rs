//! The Redis engine's broker: history in Redis streams, delivery over Redis PUB/SUB.
//!
//! A publish runs one Lua script (`lua/publish.lua`) that appends to the stream, advances the
//! offset and PUBLISHes, so the history and the live message can never disagree. Each node
//! holds one PUB/SUB connection per shard and subscribes it to a channel while it has local
//! subscribers, never once per client. Every live message carries the offset before it and
//! the epoch, so a node whose PUB/SUB link dropped a message (a reconnect, a Redis that
//! restarted empty, a failover to a replica that was behind) sees the gap or the new epoch
//! and makes the affected clients recover. Each channel's data and PUB/SUB live on its shard
//! (`RedisLink::shard`); control messages go over whichever shard is reachable, and every
//! node listens on all of them.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chorus_protocol::frame::{ClientInfo, Data, Publication, StreamPosition};
use fred::prelude::*;
use fred::types::scripts::Script;
use parking_lot::Mutex;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::Notify;

use super::SourceEpochs;
use super::{Broker, BrokerError, BrokerEventHandler, HistoryFilter, HistoryPage, PublishOptions};
use crate::recovery::{continue_from, Continuation, StreamState};
use crate::redis_link::{text, RedisLink};

const PUBLISH: &str = include_str!("lua/publish.lua");
const HISTORY: &str = include_str!("lua/history.lua");
const REMOVE: &str = "redis.call('del', KEYS[1]) \
    local top = redis.call('hget', KEYS[2], 's') \
    if top then redis.call('hset', KEYS[2], 'g', top) end return 0";
/// A publication with no history but an idempotency key: sent only if the key is new in the
/// window. KEYS[1] the key; ARGV[1] the window (s), ARGV[2] `publish` or `spublish`, ARGV[3]
/// the PUB/SUB channel, ARGV[4] the message.
const PUBLISH_ONCE: &str = "if redis.call('set', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then \
    redis.call(ARGV[2], ARGV[3], ARGV[4]) return 1 end return 0";
/// Centrifugo keeps idempotent publish results for five minutes.
const IDEMPOTENCY_WINDOW_SECS: u64 = 300;

pub struct RedisBroker {
    link: Arc<RedisLink>,
    publish: Script,
    publish_once: Script,
    history: Script,
    remove: Script,
    /// Channels this node's PUB/SUB connection is subscribed to.
    subscribed: Mutex<HashSet<String>>,
    /// Channel prefixes positioned by a source, with the source's epoch.
    sources: SourceEpochs,
    handler: OnceLock<Arc<dyn BrokerEventHandler>>,
}

fn unavailable(e: fred::error::Error) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}

fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl RedisBroker {
    pub fn new(link: Arc<RedisLink>) -> Self {
        RedisBroker {
            link,
            publish: Script::from_lua(PUBLISH),
            publish_once: Script::from_lua(PUBLISH_ONCE),
            history: Script::from_lua(HISTORY),
            remove: Script::from_lua(REMOVE),
            subscribed: Mutex::new(HashSet::new()),
            sources: SourceEpochs::default(),
            handler: OnceLock::new(),
        }
    }

    /// Publishes a join (`j`) or leave (`l`) to the channel's nodes.
    async fn publish_presence_event(
        &self,
        kind: char,
        channel: &str,
        info: &ClientInfo,
    ) -> Result<(), BrokerError> {
        let message = format!(
            "{kind}{}",
            serde_json::to_string(info).expect("invariant: client info serializes")
        );
        self.link
            .shard(channel)
            .publish_channel(self.pubsub_channel(channel), message)
            .await
            .map_err(unavailable)
    }

    fn keys(&self, channel: &str) -> (String, String) {
        (
            self.link.channel_key("stream", channel),
            self.link.channel_key("meta", channel),
        )
    }

    fn pubsub_channel(&self, channel: &str) -> String {
        self.link.channel_key("client", channel)
    }

    /// Reads every shard's PUB/SUB connection, and resubscribes after each reconnect.
    fn spawn_readers(&self, handler: Arc<dyn BrokerEventHandler>) {
        for (index, shard) in self.link.shards.iter().enumerate() {
            let link = self.link.clone();
            let client_prefix = self.link.key("client", "");
            let control_prefix = format!("{}.", self.link.prefix);
            let mut messages = shard.subscriber.message_rx();
            let reader_handler = handler.clone();
            tokio::spawn(async move {
                loop {
                    match messages.recv().await {
                        Ok(m) => {
                            let Some(text) = m.value.as_str() else {
                                continue;
                            };
                            if let Some(channel) = link.channel_of(&m.channel, &client_prefix) {
                                dispatch(&*reader_handler, channel, &text);
                            } else if m.channel.starts_with(control_prefix.as_str()) {
                                reader_handler.on_control(&text);
                            }
                        }
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(lost = n, "redis pub/sub reader fell behind");
                            reader_handler.on_resubscribed();
                        }
                        Err(RecvError::Closed) => return,
                    }
                }
            });
            self.spawn_resubscriber(index, handler.clone());
        }
    }

    /// Subscribes a shard's PUB/SUB connection again whenever it may have lost subscriptions:
    /// after it reconnects (Redis forgot them), and on a cluster whenever any client of the
    /// shard learns of a new slot layout (a command answered MOVED, a reconnect), since a slot
    /// that moves takes its shard channels with it and Redis says so with an unsolicited
    /// SUNSUBSCRIBE that fred drops. Events coalesce into one resubscription; then the node
    /// checks its positions for what was published in between.
    fn spawn_resubscriber(&self, index: usize, handler: Arc<dyn BrokerEventHandler>) {
        let shard = &self.link.shards[index];
        let wake = Arc::new(Notify::new());
        wake_on(shard.subscriber.reconnect_rx(), wake.clone());
        let passes: &'static [Duration] = if self.link.cluster {
            for client in shard.pool.clients() {
                wake_on(client.cluster_change_rx(), wake.clone());
            }
            wake_on(shard.subscriber.cluster_change_rx(), wake.clone());
            &SLOT_MOVE_PASSES
        } else {
            &[Duration::ZERO]
        };
        let link = self.link.clone();
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                let shard = &link.shards[index];
                for settle in passes {
                    tokio::time::sleep(*settle).await;
                    resubscribe_until_done(shard).await;
                }
                tracing::info!(shard = %shard.label, "redis pub/sub resubscribed");
                handler.on_resubscribed();
            }
        });
    }
}

/// Wakes `wake` on every event `events` brings (lagging behind counts as one), until the
/// sender is gone.
fn wake_on<T: Clone + Send + 'static>(mut events: broadcast::Receiver<T>, wake: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => wake.notify_one(),
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// When a cluster shard's channels are subscribed again after a change: at once, then twice
/// more as a migration or failover finishes, since a change is often seen mid-migration,
/// while the old owner still takes a subscription it is about to drop.
const SLOT_MOVE_PASSES: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// [`Shard::resubscribe`], retried with backoff: a connection that just came back can drop
/// again, and mid-migration a slot can bounce between its two owners until the layout settles.
async fn resubscribe_until_done(shard: &crate::redis_link::Shard) {
    let mut pause = Duration::from_millis(100);
    while let Err(e) = shard.resubscribe().await {
        tracing::warn!(shard = %shard.label, error = %e, "redis resubscribe failed; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Hands one PUB/SUB message to the node: `p<offset>:<prev>:<epoch>:<publication>` (`d…` the
/// same, asked to go as a delta), `j<info>` or `l<info>`.
fn dispatch(handler: &dyn BrokerEventHandler, channel: &str, text: &str) {
    let (kind, rest) = text.split_at(text.len().min(1));
    match kind {
        "p" | "d" => {
            let mut parts = rest.splitn(4, ':');
            let (Some(offset), Some(prev), Some(epoch), Some(body)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                tracing::warn!(%channel, "malformed pub/sub publication");
                return;
            };
            match serde_json::from_str::<Publication>(body) {
                Ok(mut p) => {
                    p.offset = offset.parse().unwrap_or(0);
                    let prev = prev.parse().unwrap_or(0);
                    handler.on_publication(channel, &Arc::new(p), prev, epoch, kind == "d");
                }
                Err(e) => tracing::warn!(%channel, error = %e, "malformed pub/sub publication"),
            }
        }
        "j" | "l" => match serde_json::from_str::<ClientInfo>(rest) {
            Ok(info) if kind == "j" => handler.on_join(channel, &info),
            Ok(info) => handler.on_leave(channel, &info),
            Err(e) => tracing::warn!(%channel, error = %e, "malformed pub/sub join/leave"),
        },
        _ => tracing::warn!(%channel, "unknown pub/sub message"),
    }
}

/// A stream entry `[id, [d, json]]` as a publication.
fn entry(v: &Value) -> Option<Publication> {
    let Value::Array(pair) = v else { return None };
    let id = text(pair.first()?)?;
    let offset = id.split('-').next()?.parse().ok()?;
    let Value::Array(fields) = pair.get(1)? else {
        return None;
    };
    let json = text(fields.get(1)?)?;
    let mut p: Publication = serde_json::from_str(&json).ok()?;
    p.offset = offset;
    Some(p)
}

fn malformed(what: &str) -> BrokerError {
    BrokerError::Unavailable(format!("unexpected reply from redis: {what}"))
}

/// The `{offset, epoch, ...}` both scripts answer with.
fn position(reply: &[Value], script: &str) -> Result<StreamPosition, BrokerError> {
    let offset = reply
        .first()
        .and_then(text)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(&format!("{script} offset")))?;
    let epoch = reply
        .get(1)
        .and_then(text)
        .ok_or_else(|| malformed(&format!("{script} epoch")))?;
    Ok(StreamPosition { offset, epoch })
}

#[async_trait]
impl Broker for RedisBroker {
    fn run(&self, handler: Arc<dyn BrokerEventHandler>) {
        if self.handler.set(handler.clone()).is_ok() {
            self.spawn_readers(handler);
        }
    }

    async fn publish(
        &self,
        channel: &str,
        data: Data,
        info: Option<ClientInfo>,
        tags: Option<BTreeMap<String, String>>,
        opts: &PublishOptions,
    ) -> Result<StreamPosition, BrokerError> {
        let declared = self.sources.epoch_for(channel);
        if opts.source.is_none() && declared.is_some() {
            return Err(BrokerError::SourceOnly);
        }
        let body = serde_json::to_string(&Publication {
            data,
            info,
            offset: 0,
            tags,
            delta: false,
        })
        .expect("invariant: publications serialize");
        let shard = self.link.shard(channel);
        if opts.history_size == 0 && opts.source.is_none() {
            // No positions: a plain PUBLISH. With an idempotency key, only the first within
            // the window goes (Centrifugo's Redis engine honours keys only with history; a
            // Kafka record read twice by a cluster must not be delivered twice either way).
            let kind = if opts.delta { 'd' } else { 'p' };
            let message = format!("{kind}0:0::{body}");
            let Some(key) = &opts.idempotency_key else {
                shard
                    .publish_channel(self.pubsub_channel(channel), message)
                    .await
                    .map_err(unavailable)?;
                return Ok(StreamPosition::default());
            };
            let idem = format!("{}.{key}", self.link.channel_key("idempotency", channel));
            let command = if self.link.cluster {
                "spublish"
            } else {
                "publish"
            };
            let window = IDEMPOTENCY_WINDOW_SECS.to_string();
            self.publish_once
                .evalsha_with_reload::<i64, _, _>(
                    shard.pool.next(),
                    vec![idem],
                    vec![
                        window,
                        command.to_owned(),
                        self.pubsub_channel(channel),
                        message,
                    ],
                )
                .await
                .map_err(unavailable)?;
            return Ok(StreamPosition::default());
        }
        let (stream, meta) = self.keys(channel);
        // Broker-numbered: a key per publication with Centrifugo's window. Sourced: one set
        // of the stream's latest keys, bounded by count (see publish.lua).
        let mut keys = vec![stream, meta];
        match (&opts.idempotency_key, &opts.source) {
            (Some(k), None) => {
                keys.push(format!(
                    "{}.{k}",
                    self.link.channel_key("idempotency", channel)
                ));
            }
            (Some(_), Some(_)) => keys.push(self.link.channel_key("recent", channel)),
            (None, _) => {}
        }
        let keep = opts
            .history_size
            .max(crate::broker::memory::RECENT_KEYS_MIN);
        let (mode, src_offset, src_epoch, lane, after, deliver) = match &opts.source {
            Some(s) => (
                "s",
                s.offset,
                s.epoch.clone(),
                s.lane,
                s.complete_after,
                s.deliver,
            ),
            None => ("n", 0, String::new(), 0, 0, true),
        };
        let args: Vec<Value> = vec![
            body.into(),
            (opts.history_size as i64).into(),
            (secs(opts.history_ttl) as i64).into(),
            (secs(opts.history_meta_ttl) as i64).into(),
            new_epoch().into(),
            self.pubsub_channel(channel).into(),
            (IDEMPOTENCY_WINDOW_SECS as i64).into(),
            mode.into(),
            src_offset.to_string().into(),
            src_epoch.into(),
            lane.to_string().into(),
            after.to_string().into(),
            // Delivered as `p…`, or `d…` when the publisher asked for delta delivery.
            match (deliver, opts.delta) {
                (false, _) => "0",
                (true, false) => "1",
                (true, true) => "d",
            }
            .into(),
            opts.idempotency_key.clone().unwrap_or_default().into(),
            (keep as i64).into(),
            if self.link.cluster { "s" } else { "p" }.into(),
        ];
        let reply: Vec<Value> = self
            .publish
            .evalsha_with_reload(shard.pool.next(), keys, args)
            .await
            .map_err(unavailable)?;
        position(&reply, "publish")
    }

    async fn publish_join(&self, channel: &str, info: &ClientInfo) -> Result<(), BrokerError> {
        self.publish_presence_event('j', channel, info).await
    }

    async fn publish_leave(&self, channel: &str, info: &ClientInfo) -> Result<(), BrokerError> {
        self.publish_presence_event('l', channel, info).await
    }

    async fn history(
        &self,
        channel: &str,
        filter: &HistoryFilter,
        meta_ttl: Duration,
    ) -> Result<HistoryPage, BrokerError> {
        let (stream, meta) = self.keys(channel);
        let after = filter.since.as_ref().map_or(0, |p| p.offset);
        let limit: i64 = filter.limit.map_or(-1, |l| l as i64);
        let args: Vec<Value> = vec![
            new_epoch().into(),
            (secs(meta_ttl) as i64).into(),
            self.sources.epoch_for(channel).unwrap_or_default().into(),
            after.to_string().into(),
            limit.into(),
            if filter.reverse { "1" } else { "0" }.into(),
        ];
        let reply: Vec<Value> = self
            .history
            .evalsha_with_reload(
                self.link.shard(channel).pool.next(),
                vec![stream, meta],
                args,
            )
            .await
            .map_err(unavailable)?;
        let mut position = position(&reply, "history")?;
        if let Some(since) = &filter.since {
            let number = |i: usize, what: &str| {
                reply
                    .get(i)
                    .and_then(text)
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| malformed(&format!("history {what}")))
            };
            let state = StreamState {
                epoch: &position.epoch,
                top: position.offset,
                gap_below: number(2, "gap")?,
                sourced: number(3, "sourced")? == 1,
            };
            match continue_from(&state, since) {
                Continuation::After { top, .. } => position.offset = top,
                Continuation::Unrecoverable => return Err(BrokerError::Unrecoverable),
            }
        }
        let publications = reply[4.min(reply.len())..]
            .iter()
            .map(|v| {
                entry(v)
                    .map(Arc::new)
                    .ok_or_else(|| malformed("stream entry"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HistoryPage {
            publications,
            position,
        })
    }

    fn declare_source(&self, prefix: &str, epoch: &str) {
        self.sources.declare(prefix, epoch);
    }

    async fn remove_history(&self, channel: &str) -> Result<(), BrokerError> {
        let (stream, meta) = self.keys(channel);
        self.remove
            .evalsha_with_reload::<(), _, _>(
                self.link.shard(channel).pool.next(),
                vec![stream, meta],
                (),
            )
            .await
            .map_err(unavailable)
    }

    async fn subscribe(&self, channel: &str) -> Result<(), BrokerError> {
        let name = self.pubsub_channel(channel);
        if self.subscribed.lock().contains(&name) {
            return Ok(());
        }
        self.link
            .shard(channel)
            .subscribe_channel(name.clone())
            .await
            .map_err(unavailable)?;
        self.subscribed.lock().insert(name);
        Ok(())
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BrokerError> {
        let name = self.pubsub_channel(channel);
        if !self.subscribed.lock().remove(&name) {
            return Ok(());
        }
        self.link
            .shard(channel)
            .unsubscribe_channel(name)
            .await
            .map_err(unavailable)
    }

    /// Listens on every shard: a control message is sent over any one of them.
    async fn listen_control(&self, node_uid: &str) -> Result<(), BrokerError> {
        let own = self.link.key("node", node_uid);
        let shared = self.link.key("control", "all");
        for shard in &self.link.shards {
            shard
                .subscriber
                .subscribe(vec![shared.clone(), own.clone()])
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Sent once, over the first shard (round robin, reachable ones first) that takes it.
    async fn publish_control(&self, data: &str, to: Option<&str>) -> Result<(), BrokerError> {
        let channel = match to {
            Some(uid) => self.link.key("node", uid),
            None => self.link.key("control", "all"),
        };
        let mut last = None;
        for shard in self.link.control_order() {
            match shard
                .pool
                .next()
                .publish::<(), _, _>(channel.clone(), data.to_owned())
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(unavailable(last.expect("invariant: at least one shard")))
    }

    fn is_up(&self) -> bool {
        self.link.is_up()
    }
}
