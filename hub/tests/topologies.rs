//! The Redis engine past one Redis: channels sharded over three `redis-server`s, a Redis
//! Cluster of three masters and three replicas, and a master with a replica under Sentinel,
//! each with three (or two) `chorus-hub` processes on loopback. In each, fan-out, presence
//! and history span the nodes on every shard, and an outage (a shard restarted empty, a
//! master killed and its replica promoted) leaves every subscriber with every acknowledged
//! publication or told that it cannot recover; never a silent gap.
//!
//! The failovers lose acknowledged publications on purpose: the replica is stopped (SIGSTOP)
//! and its link cut while the master acknowledges ten more, then the master is killed and the
//! replica resumed and promoted without them, as an asynchronous replica that was behind
//! would be.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chorus_hub::placement::{hash_tag, shard_of};
use chorus_testkit::hub::HubProcess;
use chorus_testkit::pod::{Impairment, Link, Pod, Way};
use chorus_testkit::redis_topology::{RedisCluster, RedisSentinel, SENTINEL_MASTER};
use common::nodes::*;
use common::redis::RedisServer;
use common::Client;
use serde_json::{json, Value};

/// Publications per follower scenario; the outage comes at `OUTAGE_AT`.
const LAST: u64 = 300;
const OUTAGE_AT: u64 = 100;

/// History long enough for every recovery these tests make.
fn long_history(config: &mut Value) {
    config["channel"]["namespaces"][0]["history_size"] = json!(1000);
}

/// Fan-out with exact offsets, presence from another node, and history, on each channel,
/// with a client of every node subscribed.
async fn spans_the_nodes(nodes: &[HubProcess], channels: &[String]) {
    for (s, ch) in channels.iter().enumerate() {
        let mut clients = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let (mut c, _) = Client::connect(&node.url(), &format!("u{i}")).await;
            let r = subscribe(&mut c, 2, ch).await;
            assert!(r.get("error").is_none(), "{ch}: {r}");
            clients.push(c);
        }
        for n in 1..=3 {
            let r = publish(&nodes[n as usize % nodes.len()], ch, n).await;
            assert_eq!(r["result"]["offset"], n, "{ch}: {r}");
            for c in &mut clients {
                assert_eq!(next_n(c).await, (n, n), "{ch}");
            }
        }
        let users = present_users(&nodes[(s + 1) % nodes.len()], ch).await;
        let expected: BTreeSet<String> = (0..nodes.len()).map(|i| format!("u{i}")).collect();
        assert_eq!(users, expected, "{ch}");
        let history = api(
            &nodes[(s + 2) % nodes.len()],
            "history",
            json!({"channel": ch, "limit": 10}),
        )
        .await;
        let offsets: Vec<u64> = history["result"]["publications"]
            .as_array()
            .unwrap_or_else(|| panic!("{history}"))
            .iter()
            .map(|p| p["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(offsets, vec![1, 2, 3], "{ch}");
    }
}

/// Two followers per channel (on different nodes), once both are present.
async fn followers(
    nodes: &[HubProcess],
    channels: &[String],
) -> Vec<(usize, tokio::task::JoinHandle<Seen>)> {
    let mut out = Vec::new();
    for (s, ch) in channels.iter().enumerate() {
        for k in 0..2 {
            let first = (s + k) % nodes.len();
            // Where the first node is gone, the follower moves on to the next.
            let urls = (0..nodes.len())
                .map(|i| nodes[(first + i) % nodes.len()].url())
                .collect();
            let user = format!("f{s}{k}");
            out.push((s, tokio::spawn(follow(urls, user, ch.clone(), LAST))));
        }
        eventually_async("both followers subscribed", || async {
            let r = api(&nodes[0], "presence_stats", json!({"channel": ch})).await;
            r["result"]["num_clients"] == 2
        })
        .await;
    }
    out
}

/// Publishes `n` on `ch` until acknowledged (a failover is settling).
async fn publish_until_acknowledged(node: &HubProcess, ch: &str, n: u64) {
    for _ in 0..200 {
        if publish(node, ch, n).await.get("result").is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{ch}: publication {n} never acknowledged");
}

async fn all_healthy(nodes: &[HubProcess]) {
    for node in nodes {
        eventually_async("every node healthy", || async {
            get(node, "/health").await.contains(r#""status":"ok""#)
        })
        .await;
    }
}

/// Waits for a follower's last publication; fails the test if it stalls.
async fn seen(follower: tokio::task::JoinHandle<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(90), follower)
        .await
        .expect("a follower stalled")
        .unwrap()
}

/// One `chat:` channel per shard, in shard order.
fn one_channel_per_shard(shards: usize) -> Vec<String> {
    (0..shards)
        .map(|s| {
            (0..)
                .map(|i| format!("chat:t{i}"))
                .find(|ch| shard_of(ch, shards) == s)
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_spread_the_channels_and_one_restarted_empty_tells_only_its_clients() {
    let mut shards = [
        RedisServer::start().await,
        RedisServer::start().await,
        RedisServer::start().await,
    ];
    let urls: Vec<String> = shards.iter().map(RedisServer::url).collect();
    let nodes = start_nodes(
        &write_config_with(json!({"address": urls}), long_history),
        3,
    )
    .await;
    let channels = one_channel_per_shard(3);
    spans_the_nodes(&nodes, &channels).await;
    // Each channel's keys are on its own shard and on no other.
    for (s, ch) in channels.iter().enumerate() {
        for (k, shard) in shards.iter().enumerate() {
            let keys = shard.cli(&["--scan", "--pattern", &format!("*.meta.{ch}")]);
            assert_eq!(
                keys.contains(ch.as_str()),
                k == s,
                "{ch} on shard {k}: {keys:?}"
            );
        }
    }

    let victim = 1;
    let follows = followers(&nodes, &channels).await;
    let mut acknowledged = vec![Vec::new(); channels.len()];
    for n in 1..=LAST {
        if n == OUTAGE_AT {
            shards[victim].kill();
            eventually_async("health to show the outage", || async {
                get(&nodes[0], "/health").await.contains("degraded")
            })
            .await;
        }
        for (s, ch) in channels.iter().enumerate() {
            let r = publish(&nodes[n as usize % 3], ch, n).await;
            if r.get("result").is_some() {
                acknowledged[s].push(n);
            } else {
                assert_eq!(s, victim, "{ch} failed while another shard was down: {r}");
            }
        }
        if n == OUTAGE_AT {
            // The other shards served through the outage; the victim comes back empty.
            shards[victim].restart().await;
            all_healthy(&nodes).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!acknowledged[victim].contains(&OUTAGE_AT));
    for (s, follower) in follows {
        let seen = seen(follower).await;
        let who = format!("a follower of {} (shard {s})", channels[s]);
        assert_no_silent_gap(&seen, &acknowledged[s], &who);
        if s == victim {
            assert!(
                !seen.unrecovered_before.is_empty(),
                "{who}: its shard came back empty, so it must have been told it could not recover"
            );
        } else {
            assert_eq!(
                seen.got, acknowledged[s],
                "{who}: everything, once, in order"
            );
            assert!(
                seen.unrecovered_before.is_empty(),
                "{who} was disturbed: {seen:?}"
            );
        }
    }
}

/// A topology whose master can lose acknowledged publications in a failover.
trait Failover {
    /// Stops the replica (SIGSTOP) and cuts its replication link on the master's side:
    /// what the master acknowledges now, it never gets (SIGSTOP alone would not do, since
    /// the kernel still buffers what the master sends).
    fn stop_replica(&mut self);
    /// Kills the master, resumes the replica and waits for its promotion.
    fn fail_over(&mut self) -> impl std::future::Future<Output = ()>;
}

/// Kills a master after ten publications its replica never got, promotes the replica, and
/// checks that both followers of `ch` have every acknowledged publication or were told.
async fn failover_scenario(nodes: &[HubProcess], ch: &str, topology: &mut impl Failover) {
    let follows = followers(nodes, &[ch.to_owned()]).await;
    // A client that leaves holding the last lost publication, and comes back at the end.
    let (mut c, _) = Client::connect(&nodes[0].url(), "leaver").await;
    let sub = subscribe(&mut c, 2, ch).await;
    let mut leaver = Some(c);
    let epoch = sub["subscribe"]["epoch"].as_str().unwrap().to_owned();
    let mut held = 0;
    let mut acknowledged = Vec::new();
    for n in 1..=LAST {
        let node = &nodes[n as usize % nodes.len()];
        if n == OUTAGE_AT + 1 {
            topology.stop_replica();
        }
        if n == OUTAGE_AT + 11 {
            if let Some(mut c) = leaver.take() {
                loop {
                    let (got, offset) = next_n(&mut c).await;
                    held = offset;
                    if got == OUTAGE_AT + 10 {
                        break;
                    }
                }
            }
            topology.fail_over().await;
            all_healthy(nodes).await;
        }
        if n > OUTAGE_AT + 10 {
            publish_until_acknowledged(node, ch, n).await;
        } else {
            // Before the failover every publication is acknowledged, the last ten by a
            // master whose replica is stopped.
            let r = publish(node, ch, n).await;
            assert!(r.get("result").is_some(), "{r}");
        }
        acknowledged.push(n);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Recovering from where it left must not skip what came after: either it is told it
    // cannot, or it gets exactly the rest.
    let (mut back, _) = Client::connect(&nodes[1].url(), "leaver").await;
    back.send(
        json!({"id": 2, "subscribe": {"channel": ch, "recover": true,
        "offset": held, "epoch": epoch}}),
    )
    .await;
    let r = back.reply(2).await;
    if r["subscribe"]["recovered"] == true {
        let ns: Vec<u64> = r["subscribe"]["publications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["data"]["n"].as_u64().unwrap())
            .collect();
        assert_eq!(
            ns,
            (OUTAGE_AT + 11..=LAST).collect::<Vec<_>>(),
            "{ch}: a silent gap"
        );
    }
    for (_, follower) in follows {
        let seen = seen(follower).await;
        assert_no_silent_gap(&seen, &acknowledged, ch);
        assert!(
            !seen.unrecovered_before.is_empty(),
            "{ch}: the promoted replica lacks acknowledged publications the follower may \
             hold; it must have been told it could not recover: {seen:?}"
        );
    }
}

/// A cluster and the master and replica serving one channel's slot.
struct ClusterSlot {
    cluster: RedisCluster,
    tag: String,
    master: usize,
    replica: usize,
}

impl Failover for ClusterSlot {
    fn stop_replica(&mut self) {
        self.cluster.nodes[self.replica].pause();
        self.cluster.nodes[self.master].cli(&["client", "kill", "type", "replica"]);
    }

    async fn fail_over(&mut self) {
        self.cluster.nodes[self.master].kill();
        self.cluster.nodes[self.replica].resume();
        let promoted = self.cluster.wait_promoted(self.master, &self.tag).await;
        assert_eq!(promoted, self.replica);
    }
}

impl Failover for RedisSentinel {
    fn stop_replica(&mut self) {
        self.replica.pause();
        self.master.cli(&["client", "kill", "type", "replica"]);
    }

    async fn fail_over(&mut self) {
        let old = self.master.port;
        self.master.kill();
        self.replica.resume();
        self.wait_promoted().await;
        assert_ne!(self.master_port(), old);
    }
}

/// A Redis Cluster and three nodes over it.
async fn cluster_and_nodes() -> (RedisCluster, Vec<HubProcess>) {
    let cluster = RedisCluster::start().await;
    let config = write_config_with(json!({"cluster_address": [cluster.seeds()]}), long_history);
    let nodes = start_nodes(&config, 3).await;
    (cluster, nodes)
}

/// A master of `cluster` other than the one serving `tag`'s slot.
fn another_master(cluster: &RedisCluster, tag: &str) -> usize {
    let (owner, _) = cluster.owners(tag);
    (0..cluster.nodes.len())
        .find(|&i| i != owner && cluster.nodes[i].cli(&["role"]).starts_with("master"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_serves_every_master_and_survives_a_failover_without_a_silent_gap() {
    let (cluster, nodes) = cluster_and_nodes().await;
    // One channel on each master.
    let mut channels: Vec<String> = Vec::new();
    let mut masters = BTreeSet::new();
    for i in 0.. {
        let ch = format!("chat:c{i}");
        if masters.insert(cluster.owners(&hash_tag(&ch)).0) {
            channels.push(ch);
        }
        if masters.len() == 3 {
            break;
        }
    }
    spans_the_nodes(&nodes, &channels).await;
    // Sharded PUB/SUB: the channel is a shard channel on its own master, and no node
    // subscribed it as a cluster-wide channel.
    for ch in &channels {
        let (master, _) = cluster.owners(&hash_tag(ch));
        let (mut c, _) = Client::connect(&nodes[0].url(), "watcher").await;
        subscribe(&mut c, 2, ch).await;
        let shard_channels = cluster.nodes[master].cli(&["pubsub", "shardchannels"]);
        assert!(
            shard_channels.contains(ch.as_str()),
            "{ch}: {shard_channels:?}"
        );
        for node in &cluster.nodes {
            assert!(!node.cli(&["pubsub", "channels"]).contains(ch.as_str()));
        }
    }

    let ch = channels[0].clone();
    let tag = hash_tag(&ch);
    let (master, replica) = cluster.owners(&tag);
    let mut slot = ClusterSlot {
        cluster,
        tag,
        master,
        replica: replica.expect("every master has a replica"),
    };
    failover_scenario(&nodes, &ch, &mut slot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_whose_cluster_slot_migrates_mid_stream_keeps_being_delivered() {
    let (cluster, nodes) = cluster_and_nodes().await;
    let ch = "chat:moving";
    let tag = hash_tag(ch);
    let follows = followers(&nodes, &[ch.to_owned()]).await;
    // A channel without history: no epoch, so nobody is told to resubscribe when its slot
    // moves; its node must follow the slot by itself (`RedisBroker::spawn_resubscriber`).
    let plain = "moving";
    let (mut watcher, _) = Client::connect(&nodes[0].url(), "watcher").await;
    subscribe(&mut watcher, 2, plain).await;
    let to = another_master(&cluster, &tag);
    let plain_tag = hash_tag(plain);
    let plain_to = another_master(&cluster, &plain_tag);
    // Whether the watcher's node holds `plain` as a shard channel on its new master, asked of
    // Redis itself: from then on nothing may be missed, however long it took to get there.
    let shard_name = format!(".client.{plain_tag}{plain}");
    let followed = || {
        cluster.nodes[plain_to]
            .cli(&["pubsub", "shardchannels"])
            .lines()
            .any(|c| c.trim().ends_with(&shard_name))
    };
    let mut acknowledged = Vec::new();
    let mut followed_from = None;
    for n in 1..=LAST {
        if n == OUTAGE_AT {
            cluster.migrate(&tag, to);
            assert_eq!(cluster.owners(&tag).0, to);
            cluster.migrate(&plain_tag, plain_to);
        }
        if n >= OUTAGE_AT && followed_from.is_none() && followed() {
            followed_from = Some(n);
        }
        publish_until_acknowledged(&nodes[n as usize % 3], plain, n).await;
        if n == OUTAGE_AT + 50 {
            // Live delivery follows the slot: the followers' nodes hold the channel as a
            // shard channel on its new master.
            eventually_async("the shard channel to follow its slot", || async {
                cluster.nodes[to]
                    .cli(&["pubsub", "shardchannels"])
                    .contains(ch)
            })
            .await;
        }
        publish_until_acknowledged(&nodes[n as usize % 3], ch, n).await;
        acknowledged.push(n);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (_, follower) in follows {
        let seen = seen(follower).await;
        assert_no_silent_gap(&seen, &acknowledged, ch);
    }
    let mut got = Vec::new();
    while got.last() != Some(&LAST) {
        let push = watcher.next_pub().await;
        got.push(push["push"]["pub"]["data"]["n"].as_u64().unwrap());
    }
    // Without history there is nothing to recover: what was sent while the slot moved, before
    // the node subscribed where it lives now, is gone (as in Centrifugo), but delivery resumes
    // on its own, in order, without duplicates.
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "{plain}: out of order: {got:?}"
    );
    // What was missed is one run from the move until the node held the channel on its new
    // master, and nothing after: a bound set by Redis's own state, not by how many
    // publications a busy machine got through meanwhile.
    let followed_from = followed_from.unwrap_or_else(|| {
        panic!("{plain}: the watcher's node never subscribed on the slot's new master")
    });
    let missed: Vec<u64> = acknowledged
        .iter()
        .filter(|n| !got.contains(n))
        .copied()
        .collect();
    assert!(
        missed.iter().all(|n| (OUTAGE_AT..followed_from).contains(n)),
        "{plain}: missed {missed:?}, but only publications from the move ({OUTAGE_AT}) until the node followed the slot ({followed_from}) may be"
    );
    eprintln!(
        "{plain}: {} of {} publications missed around the slot move; the node followed it at {followed_from}",
        missed.len(),
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_follow_a_sentinel_failover_and_lost_acknowledged_publications_are_told() {
    let mut sentinel = RedisSentinel::start().await;
    let config = write_config_with(
        json!({"sentinel_address": [sentinel.address()], "sentinel_master_name": SENTINEL_MASTER}),
        long_history,
    );
    let nodes = start_nodes(&config, 2).await;
    spans_the_nodes(&nodes, &["chat:s0".to_owned()]).await;
    failover_scenario(&nodes, "chat:f", &mut sentinel).await;
}

/// A node cut off from the master (every packet between them dropped, the sockets left open,
/// the Sentinel still reachable) while the Sentinel fails over to the replica. The node must
/// find its silent connections (the heartbeat), ask the Sentinel again and reach the new
/// master; the other node follows the failover as usual. Followers on both nodes get every
/// acknowledged publication, live or recovered, or are told they cannot recover.
///
/// It fails today (a follower gets 200 then 202, never told about 201): after a manual
/// Sentinel failover the old master stays a writable master until the Sentinel converts it,
/// so the node that could still reach it goes on publishing there while the cut-off node,
/// once its heartbeat finds its links silent, is on the new master. Each master's stream is
/// consistent in itself (the new one even takes a new epoch, `publish.lua`'s run id), so
/// neither shows a gap; 201 is only on the other. Not fixed: the node would have to stop
/// writing to a master the Sentinel has replaced (its `+switch-master`), or the master refuse
/// writes without a replica (`min-replicas-to-write`). `cargo test -p chorus-hub --test
/// topologies -- --ignored` runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails: a silent gap after a Sentinel failover with two writable masters (see above)"]
async fn a_node_partitioned_from_the_old_master_follows_a_sentinel_failover() {
    let sentinel = RedisSentinel::start().await;
    let config = write_config_with(
        json!({"sentinel_address": [sentinel.address()], "sentinel_master_name": SENTINEL_MASTER}),
        long_history,
    );
    let mut pod = Pod::create();
    let nodes = vec![
        HubProcess::start(common::hub_bin(), &config).await,
        HubProcess::start_in(common::hub_bin(), &config, &pod).await,
    ];
    let ch = "chat:partitioned";
    let follows = followers(&nodes, &[ch.to_owned()]).await;
    let mut acknowledged = Vec::new();
    for n in 1..=LAST {
        if n == OUTAGE_AT + 1 {
            pod.impair(
                Link::ToHost(sentinel.master.port),
                Way::Both,
                Impairment::Cut,
            );
            let asked = sentinel
                .sentinel
                .cli(&["sentinel", "failover", SENTINEL_MASTER]);
            assert!(
                asked.contains("OK"),
                "the Sentinel refused a failover: {asked}"
            );
            sentinel.wait_promoted().await;
            // Its connections are open and silent: only its heartbeat can tell (the Sentinel
            // then names the new master at once, so `/health` may never read degraded).
            eventually_async(
                "the cut-off node to find its connections silent",
                || async {
                    nodes[1]
                        .log_text()
                        .contains("redis connection unresponsive; reconnecting")
                },
            )
            .await;
        }
        if n == OUTAGE_AT + 100 {
            pod.heal();
        }
        // Through the node that can reach Redis while the other is cut off, then both.
        let node = if (OUTAGE_AT..OUTAGE_AT + 100).contains(&n) {
            &nodes[0]
        } else {
            &nodes[n as usize % nodes.len()]
        };
        publish_until_acknowledged(node, ch, n).await;
        acknowledged.push(n);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    all_healthy(&nodes).await;
    for (_, follower) in follows {
        let seen = seen(follower).await;
        assert_no_silent_gap(&seen, &acknowledged, ch);
        assert_eq!(
            seen.got.last(),
            Some(&LAST),
            "{ch}: a follower did not get to the end: {seen:?}"
        );
    }
}
