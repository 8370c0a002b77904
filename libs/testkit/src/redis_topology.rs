//! Redis topologies built from real `redis-server` processes on loopback: a Redis Cluster of
//! three masters with a replica each (`redis-cli --cluster create`), and a master with one
//! replica watched by a Sentinel. Each lets a test kill a master and wait for the promotion.

use std::path::PathBuf;
use std::process::Command;

use crate::redis::{cli, RedisServer};

/// A scratch directory for node and Sentinel config files, which Redis rewrites.
fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(crate::unique(&format!("chorus-{what}")));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free port whose cluster bus port (10000 above it) exists and is free too.
fn cluster_port() -> u16 {
    loop {
        let port = crate::free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Three masters and three replicas. A master's slots stay served by the others while it is
/// down (`cluster-require-full-coverage no`), and a replica takes over after a second of
/// silence (`cluster-node-timeout 1000`).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        // Each node logs there, for a failing test to read.
        let dir = scratch("cluster");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = cluster_port();
            let conf = format!("nodes-{port}.conf");
            let log = format!("{port}.log");
            let dir = dir.to_string_lossy().into_owned();
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &conf,
                "--cluster-node-timeout",
                "1000",
                "--cluster-require-full-coverage",
                "no",
                "--dir",
                &dir,
                "--logfile",
                &log,
                // Replicas sync at once instead of after a 5 s wait for others to join.
                "--repl-diskless-sync-delay",
                "0",
            ];
            nodes.push(RedisServer::start_on(port, &args).await);
        }
        let addresses: Vec<String> = nodes.iter().map(RedisServer::address).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = RedisCluster { nodes };
        crate::eventually(
            "the cluster to be ok, every master with its replica",
            60,
            || {
                let ok = cluster
                    .nodes
                    .iter()
                    .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
                    && cluster
                        .nodes
                        .iter()
                        .filter(|n| n.cli(&["role"]).starts_with("slave"))
                        .filter(|n| {
                            n.cli(&["info", "replication"])
                                .contains("master_link_status:up")
                        })
                        .count()
                        == 3;
                async move { ok }
            },
        )
        .await;
        cluster
    }

    /// `host:port,host:port,...`: one `engine.redis.cluster_address` entry.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::address)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn live(&self) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a cluster node runs")
    }

    /// The index in `nodes` of the master serving `key`'s slot, and of its replica.
    pub fn owners(&self, key: &str) -> (usize, Option<usize>) {
        let slot: u16 = self
            .live()
            .cli(&["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("cluster keyslot answers a number");
        let table = self.live().cli(&["cluster", "nodes"]);
        let index_of = |addr: &str| {
            let port: u16 = addr.split(['@', ':']).nth(1)?.parse().ok()?;
            self.nodes.iter().position(|n| n.port == port)
        };
        let mut master = None;
        let mut master_id = "";
        for line in table.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            // A failing master still lists its slots until a replica takes them.
            if f.len() < 9 || !f[2].contains("master") {
                continue;
            }
            let serves = f[8..].iter().any(|range| {
                let mut ends = range.split('-').map(|n| n.parse::<u16>());
                match (ends.next(), ends.next()) {
                    (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
                    (Some(Ok(a)), None) => a == slot,
                    _ => false,
                }
            });
            if serves {
                master = index_of(f[1]);
                master_id = f[0];
            }
        }
        let replica = table.lines().find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 3 && f[2].contains("slave") && f[3] == master_id)
                .then(|| index_of(f[1]))
                .flatten()
        });
        (master.expect("some master serves the slot"), replica)
    }

    /// Waits until a node other than `old` serves `key`'s slot and the cluster is ok.
    pub async fn wait_promoted(&self, old: usize, key: &str) -> usize {
        let mut new = old;
        crate::eventually("a replica to be promoted", 60, || {
            let (master, _) = self.owners(key);
            new = master;
            let ok = master != old
                && self
                    .live()
                    .cli(&["cluster", "info"])
                    .contains("cluster_state:ok");
            async move { ok }
        })
        .await;
        new
    }
}

impl RedisCluster {
    /// Moves `key`'s slot, with its keys, to master `to` (the steps `redis-cli --cluster
    /// reshard` takes for each slot): IMPORTING and MIGRATING, MIGRATE in batches, then the
    /// new owner announced to every master.
    pub fn migrate(&self, key: &str, to: usize) {
        let slot = self
            .live()
            .cli(&["cluster", "keyslot", key])
            .trim()
            .to_owned();
        let (from, _) = self.owners(key);
        let id = |i: usize| self.nodes[i].cli(&["cluster", "myid"]).trim().to_owned();
        let (src, dst) = (id(from), id(to));
        self.nodes[to].cli(&["cluster", "setslot", &slot, "importing", &src]);
        self.nodes[from].cli(&["cluster", "setslot", &slot, "migrating", &dst]);
        loop {
            let listed = self.nodes[from].cli(&["cluster", "getkeysinslot", &slot, "100"]);
            let keys: Vec<&str> = listed.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = self.nodes[to].port.to_string();
            let mut args = vec!["migrate", "127.0.0.1", &port, "", "0", "5000", "keys"];
            args.extend(keys);
            let moved = self.nodes[from].cli(&args);
            assert!(
                moved.contains("OK") || moved.contains("NOKEY"),
                "MIGRATE: {moved}"
            );
        }
        // The new owner first, then the old one, then the rest, as Redis's docs advise.
        let mut order = vec![to, from];
        order.extend((0..self.nodes.len()).filter(|&i| i != to && i != from));
        for i in order {
            let node = &self.nodes[i];
            if node.is_running() && node.cli(&["role"]).starts_with("master") {
                let done = node.cli(&["cluster", "setslot", &slot, "node", &dst]);
                assert!(done.contains("OK"), "SETSLOT NODE on {i}: {done}");
            }
        }
    }
}

/// A master, one replica and one Sentinel (quorum 1) watching them as `mymaster`; a master
/// silent for a second is failed over.
pub struct RedisSentinel {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinel: RedisServer,
}

pub const SENTINEL_MASTER: &str = "mymaster";

impl RedisSentinel {
    pub async fn start() -> RedisSentinel {
        let master = RedisServer::start().await;
        let replica =
            RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]).await;
        crate::eventually("the replica to sync", 30, || {
            let up = replica
                .cli(&["info", "replication"])
                .contains("master_link_status:up");
            async move { up }
        })
        .await;
        let conf = scratch("sentinel").join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 5000\n",
                master.port
            ),
        )
        .unwrap();
        let conf = conf.to_string_lossy().into_owned();
        let sentinel = RedisServer::start_with(&[&conf, "--sentinel"]).await;
        let s = RedisSentinel {
            master,
            replica,
            sentinel,
        };
        // A Sentinel learns of replicas from the master's INFO, every ten seconds.
        crate::eventually("the Sentinel to know the replica", 30, || {
            let known = s
                .sentinel
                .cli(&["sentinel", "replicas", SENTINEL_MASTER])
                .contains(&s.replica.port.to_string());
            async move { known }
        })
        .await;
        s
    }

    /// `host:port`: one `engine.redis.sentinel_address` entry.
    pub fn address(&self) -> String {
        self.sentinel.address()
    }

    /// The port the Sentinel names as the master now.
    pub fn master_port(&self) -> u16 {
        cli(
            self.sentinel.port,
            &["sentinel", "get-master-addr-by-name", SENTINEL_MASTER],
        )
        .lines()
        .nth(1)
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0)
    }

    /// Waits until the Sentinel names the replica as the master.
    pub async fn wait_promoted(&self) {
        crate::eventually("the Sentinel to promote the replica", 60, || {
            let done = self.master_port() == self.replica.port
                && self.replica.cli(&["role"]).starts_with("master");
            async move { done }
        })
        .await;
    }
}
