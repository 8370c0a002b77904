//! The connections to the Redis every node shares with the Redis engine, one [`Shard`] per
//! configured shard: a command pool that the broker and the presence manager both use, and
//! the one PUB/SUB connection that brings this node the channels its clients are subscribed
//! to. A channel lives on one shard ([`crate::placement`]); the cluster control channel runs
//! over every shard. Its own file, so the engine's halves (`broker/redis.rs`,
//! `presence/redis.rs`) and the engine that builds them (`engine.rs`) each depend on it and
//! not on each other.
//!
//! A shard is one Redis, one Redis Cluster, or one Sentinel-watched master (fred follows
//! the cluster's slots and the Sentinels' failovers). On a cluster every key of a channel
//! carries the channel's hash tag, so the engine's scripts touch one slot, and channel
//! PUB/SUB is sharded (`SPUBLISH`/`SSUBSCRIBE`), so a publication reaches only the nodes
//! that own its slot instead of being broadcast over the cluster bus.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::config::{ClusterDiscoveryPolicy, Config as FredConfig, ServerConfig};

use crate::config::redis::{ShardAddress, Topology};

/// Connections to one shard.
pub struct Shard {
    /// Commands and scripts; fred pipelines concurrent commands on each connection.
    pub pool: Pool,
    /// The node's one PUB/SUB connection to this shard, whatever the number of channels.
    pub subscriber: SubscriberClient,
    /// Hosts and topology, for logs (never a password).
    pub label: String,
    /// A Redis Cluster: channel PUB/SUB is sharded (`SPUBLISH`/`SSUBSCRIBE`).
    cluster: bool,
    up: AtomicBool,
}

impl Shard {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Publishes on a channel's PUB/SUB name (`RedisLink::channel_key`), sharded on a cluster.
    pub async fn publish_channel(
        &self,
        name: String,
        message: String,
    ) -> Result<(), fred::error::Error> {
        let client = self.pool.next();
        if self.cluster {
            client.spublish(name, message).await
        } else {
            client.publish(name, message).await
        }
    }

    /// Subscribes this node's PUB/SUB connection to a channel's PUB/SUB name.
    pub async fn subscribe_channel(&self, name: String) -> Result<(), fred::error::Error> {
        if self.cluster {
            self.subscriber.ssubscribe(name).await
        } else {
            self.subscriber.subscribe(name).await
        }
    }

    pub async fn unsubscribe_channel(&self, name: String) -> Result<(), fred::error::Error> {
        if self.cluster {
            self.subscriber.sunsubscribe(name).await
        } else {
            self.subscriber.unsubscribe(name).await
        }
    }

    /// Subscribes again to every channel the PUB/SUB connection tracks: plain ones in one
    /// command, shard channels one slot at a time, where the slot lives now (on a cluster the
    /// connection first reloads the slot map, which it does not by itself when Redis moves a
    /// slot and drops its shard channels). fred's own `resubscribe_all` also sends a
    /// PSUBSCRIBE with no pattern, which Redis refuses, and stops there.
    pub async fn resubscribe(&self) -> Result<(), fred::error::Error> {
        if self.cluster {
            self.subscriber.sync_cluster().await?;
        }
        let channels: Vec<fred::types::Key> = self
            .subscriber
            .tracked_channels()
            .into_iter()
            .map(Into::into)
            .collect();
        if !channels.is_empty() {
            self.subscriber.subscribe(channels).await?;
        }
        let sharded = self.subscriber.tracked_shard_channels();
        for (_, keys) in fred::util::group_by_hash_slot(sharded)? {
            self.subscriber.ssubscribe(keys).await?;
        }
        Ok(())
    }
}

/// Connections to every shard of the Redis engine.
pub struct RedisLink {
    pub shards: Vec<Shard>,
    pub prefix: String,
    /// Redis Cluster: keys carry a channel's hash tag and channel PUB/SUB is sharded.
    pub cluster: bool,
    /// Round robin over shards for control messages.
    round: AtomicUsize,
}

/// Commands in flight on a few connections: fred pipelines each, and more than the cores
/// buys nothing.
const POOL_SIZE: usize = 2;
/// Messages the PUB/SUB reader may fall behind by before it counts them as lost.
const PUBSUB_BUFFER: usize = 1 << 16;
/// How often every Redis connection is PINGed ([`RedisLink::watch`]).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a starting node waits for Redis before giving up with an error.
const STARTUP_WAIT: Duration = Duration::from_secs(10);

fn fred_config(shard: &ShardAddress, master_name: &str) -> FredConfig {
    let server = match shard.topology {
        Topology::Standalone => {
            let (host, port) = shard.hosts[0].clone();
            ServerConfig::new_centralized(host, port)
        }
        Topology::Cluster => ServerConfig::Clustered {
            hosts: shard
                .hosts
                .iter()
                .map(|(h, p)| fred::types::config::Server::new(h.clone(), *p))
                .collect(),
            // Seeds and the last routing table both: a killed seed does not strand the node.
            policy: ClusterDiscoveryPolicy::UseCache,
        },
        Topology::Sentinel => ServerConfig::new_sentinel(shard.hosts.clone(), master_name),
    };
    FredConfig {
        server,
        username: shard.user.clone(),
        password: shard.password.clone(),
        database: (shard.topology != Topology::Cluster && shard.db != 0).then_some(shard.db),
        ..FredConfig::default()
    }
}

async fn connect_shard(
    address: &ShardAddress,
    config: &crate::config::Redis,
) -> anyhow::Result<Shard> {
    let label = address.label();
    let mut builder = Builder::from_config(fred_config(address, &config.sentinel_master_name));
    builder
        .with_performance_config(|p| {
            p.default_command_timeout = config.io_timeout.0;
            p.broadcast_channel_capacity = PUBSUB_BUFFER;
        })
        .with_connection_config(|c| {
            c.connection_timeout = config.connect_timeout.0;
            c.internal_command_timeout = config.io_timeout.0;
            // A command is tried once more after a reconnect, then fails to its caller.
            c.max_command_attempts = 2;
            // A slot moving during a migration or a failover: follow it a few times.
            c.max_redirections = 10;
        })
        // Retried forever: a node outlives a Redis restart. 0 = no attempt limit.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
    let pool = builder
        .build_pool(POOL_SIZE)
        .with_context(|| format!("engine.redis shard {label}"))?;
    let subscriber = builder.build_subscriber_client()?;
    let connect = async {
        pool.init().await?;
        subscriber.init().await?;
        Ok::<_, fred::error::Error>(())
    };
    match tokio::time::timeout(STARTUP_WAIT, connect).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => anyhow::bail!("redis {label} unreachable: {e}"),
        Err(_) => anyhow::bail!("redis {label} unreachable for {}s", STARTUP_WAIT.as_secs()),
    }
    Ok(Shard {
        pool,
        subscriber,
        label,
        cluster: address.topology == Topology::Cluster,
        up: AtomicBool::new(true),
    })
}

impl RedisLink {
    pub async fn connect(config: &crate::config::Redis) -> anyhow::Result<Arc<RedisLink>> {
        let addresses = config.shards().map_err(anyhow::Error::msg)?;
        let shards =
            futures_util::future::try_join_all(addresses.iter().map(|a| connect_shard(a, config)))
                .await?;
        Ok(Arc::new(RedisLink {
            shards,
            prefix: config.prefix.clone(),
            cluster: config.topology() == Topology::Cluster,
            round: AtomicUsize::new(0),
        }))
    }

    /// The shard `channel` lives on.
    pub fn shard(&self, channel: &str) -> &Shard {
        &self.shards[crate::placement::shard_of(channel, self.shards.len())]
    }

    /// `<prefix>.<kind>.<name>`: a key or PUB/SUB channel of this installation that belongs
    /// to no channel (the control channels).
    pub fn key(&self, kind: &str, name: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + kind.len() + name.len() + 2);
        k.push_str(&self.prefix);
        k.push('.');
        k.push_str(kind);
        k.push('.');
        k.push_str(name);
        k
    }

    /// `<prefix>.<kind>.<channel>`, with the channel's hash tag before the name on a
    /// cluster: every key and the PUB/SUB channel of one channel share a slot.
    pub fn channel_key(&self, kind: &str, channel: &str) -> String {
        if self.cluster {
            self.key(
                kind,
                &format!("{}{channel}", crate::placement::hash_tag(channel)),
            )
        } else {
            self.key(kind, channel)
        }
    }

    /// The channel a `client` PUB/SUB channel name (from [`Self::channel_key`]) carries.
    pub fn channel_of<'a>(&self, pubsub: &'a str, client_prefix: &str) -> Option<&'a str> {
        let rest = pubsub.strip_prefix(client_prefix)?;
        if self.cluster {
            rest.get(crate::placement::HASH_TAG_LEN..)
        } else {
            Some(rest)
        }
    }

    /// Every shard reachable.
    pub fn is_up(&self) -> bool {
        self.shards.iter().all(Shard::is_up)
    }

    /// The shards in the order a control message tries them: round robin from a reachable
    /// one, so control traffic spreads and one shard down does not stop it.
    pub fn control_order(&self) -> Vec<&Shard> {
        let n = self.shards.len();
        let start = self.round.fetch_add(1, Ordering::Relaxed) % n;
        let mut order: Vec<&Shard> = (0..n).map(|i| &self.shards[(start + i) % n]).collect();
        order.sort_by_key(|s| !s.is_up());
        order
    }

    /// Keeps `is_up` current: both connections of every shard must be connected. A partition
    /// leaves a socket open and silent, so every connection is also PINGed each
    /// [`HEARTBEAT`] (the next PING only once the last was answered); one unanswered for
    /// `engine.redis.io_timeout` is closed and dialled again, so the link says it is down and,
    /// once Redis answers, reconnects, resubscribes and checks positions, instead of waiting
    /// minutes for TCP to give up. (fred's own `unresponsive` check cannot see this: every
    /// write restarts its clock, so a connection that keeps writing is never found silent.)
    pub fn watch(self: &Arc<Self>, metrics: Arc<crate::metrics::Metrics>, io_timeout: Duration) {
        for shard in &self.shards {
            let label = &shard.label;
            for client in shard.pool.clients() {
                heartbeat(
                    Arc::downgrade(self),
                    client.clone(),
                    label.clone(),
                    io_timeout,
                );
            }
            let subscriber = shard.subscriber.clone();
            heartbeat(Arc::downgrade(self), subscriber, label.clone(), io_timeout);
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let Some(link) = weak.upgrade() else { return };
                for shard in &link.shards {
                    let up = shard.subscriber.is_connected() && shard.pool.next().is_connected();
                    if shard.up.swap(up, Ordering::Relaxed) != up {
                        if up {
                            tracing::info!(shard = %shard.label, "redis reachable again");
                        } else {
                            tracing::warn!(shard = %shard.label, "redis unreachable; retrying with backoff");
                        }
                    }
                }
                metrics.redis_up.set(i64::from(link.is_up()));
            }
        });
    }
}

/// PINGs `client` each [`HEARTBEAT`] while `link` lives; forces a reconnection when a PING
/// on a connected client is not answered within `timeout`.
fn heartbeat<C: ClientLike + ServerInterface + Clone + Send + Sync + 'static>(
    link: std::sync::Weak<RedisLink>,
    client: C,
    shard: String,
    timeout: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if link.strong_count() == 0 {
                return;
            }
            if !client.is_connected() {
                // Already reconnecting: the reconnect policy has it.
                continue;
            }
            let answered = tokio::time::timeout(timeout, client.ping::<()>(None)).await;
            if matches!(answered, Ok(Ok(()))) || !client.is_connected() {
                continue;
            }
            tracing::warn!(%shard, "redis connection unresponsive; reconnecting");
            // Not awaited: against a partition the new dial waits on its own timeout and
            // backoff, and the next tick skips a client that is not connected.
            let c = client.clone();
            tokio::spawn(async move { c.force_reconnection().await });
        }
    });
}

/// A Redis reply value as text (scripts answer strings, numbers or bulk bytes).
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string()),
        Value::Bytes(b) => String::from_utf8(b.to_vec()).ok(),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}
