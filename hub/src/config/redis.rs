//! Centrifugo v6 `engine.redis`: where the Redis engine's data lives, in one of three
//! topologies, each made of one or more shards.
//!
//! - `address`: one Redis per entry (a string or a list). Several entries shard the channels
//!   over several Redis servers by a stable hash of the channel name.
//! - `cluster_address`: Redis Cluster; each entry is one cluster (its seed nodes, separated by
//!   commas), so several entries shard over several clusters, as in Centrifugo.
//! - `sentinel_address` with `sentinel_master_name`: each entry is one master's set of
//!   Sentinels (separated by commas); the nodes follow a failover by themselves.
//!
//! An entry is `host:port` or `redis://[user:password@]host:port[/db]`; `user`, `password`
//! and `db` apply where an entry names none.

use serde::{Deserialize, Deserializer, Serialize};

use super::HumanDuration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Redis {
    /// One entry per shard; a single string is one shard.
    #[serde(deserialize_with = "one_or_many")]
    pub address: Vec<String>,
    #[serde(deserialize_with = "one_or_many")]
    pub cluster_address: Vec<String>,
    #[serde(deserialize_with = "one_or_many")]
    pub sentinel_address: Vec<String>,
    pub sentinel_master_name: String,
    pub user: String,
    pub password: String,
    pub db: u8,
    /// Prepended to every key and PUB/SUB channel, so several installations share a Redis.
    pub prefix: String,
    pub connect_timeout: HumanDuration,
    /// Limit on one command's round trip; past it the command fails and is reported.
    pub io_timeout: HumanDuration,
    /// How long a node's presence entries outlive its last refresh: a node killed with
    /// `kill -9` vanishes from presence after this.
    pub presence_ttl: HumanDuration,
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            address: vec!["redis://127.0.0.1:6379".into()],
            cluster_address: Vec::new(),
            sentinel_address: Vec::new(),
            sentinel_master_name: String::new(),
            user: String::new(),
            password: String::new(),
            db: 0,
            prefix: "centrifugo".into(),
            connect_timeout: HumanDuration::secs(1),
            io_timeout: HumanDuration::secs(4),
            presence_ttl: HumanDuration::secs(60),
        }
    }
}

/// How one shard's servers are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Standalone,
    Cluster,
    Sentinel,
}

/// One shard, parsed: what the engine connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardAddress {
    pub topology: Topology,
    /// The server, the cluster's seed nodes, or the Sentinels.
    pub hosts: Vec<(String, u16)>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: u8,
}

impl ShardAddress {
    /// For logs and errors: the hosts, never the password.
    pub fn label(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        format!("{:?} {}", self.topology, hosts.join(","))
    }
}

impl Redis {
    /// The topology in use: Sentinel, then Cluster, then plain addresses (Centrifugo's order).
    pub fn topology(&self) -> Topology {
        if !self.sentinel_address.is_empty() {
            Topology::Sentinel
        } else if !self.cluster_address.is_empty() {
            Topology::Cluster
        } else {
            Topology::Standalone
        }
    }

    /// Every shard, in configuration order (the order channels are hashed over).
    pub fn shards(&self) -> Result<Vec<ShardAddress>, String> {
        let topology = self.topology();
        let (key, entries) = match topology {
            Topology::Sentinel => ("sentinel_address", &self.sentinel_address),
            Topology::Cluster => ("cluster_address", &self.cluster_address),
            Topology::Standalone => ("address", &self.address),
        };
        if entries.is_empty() {
            return Err("engine.redis.address must name at least one Redis".into());
        }
        entries
            .iter()
            .map(|entry| {
                self.shard(topology, entry)
                    .map_err(|e| format!("engine.redis.{key} entry {:?}: {e}", redact(entry)))
            })
            .collect()
    }

    fn shard(&self, topology: Topology, entry: &str) -> Result<ShardAddress, String> {
        let mut shard = ShardAddress {
            topology,
            hosts: Vec::new(),
            user: non_empty(&self.user),
            password: non_empty(&self.password),
            db: self.db,
        };
        let parts: Vec<&str> = entry.split(',').map(str::trim).collect();
        if topology == Topology::Standalone && parts.len() > 1 {
            return Err("one Redis per entry (a list shards over several)".into());
        }
        for part in parts {
            let rest = if let Some(r) = part.strip_prefix("redis://") {
                r
            } else if part.starts_with("rediss://") {
                return Err("TLS (rediss://) is not supported".into());
            } else if part.contains("://") {
                return Err("must be host:port or a redis:// URL".into());
            } else {
                part
            };
            let (creds, rest) = match rest.rsplit_once('@') {
                Some((c, r)) => (Some(c), r),
                None => (None, rest),
            };
            if let Some(creds) = creds {
                let (user, password) = match creds.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (creds, None),
                };
                shard.user = non_empty(user).or(shard.user);
                shard.password = password.and_then(non_empty).or(shard.password);
            }
            let (hostport, db) = match rest.split_once('/') {
                Some((h, d)) if !d.is_empty() => (
                    h,
                    Some(
                        d.parse::<u8>()
                            .map_err(|_| format!("database {d:?} is not a number"))?,
                    ),
                ),
                Some((h, _)) => (h, None),
                None => (rest, None),
            };
            if let Some(db) = db {
                shard.db = db;
            }
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| format!("port {p:?} is not a number"))?,
                ),
                None => (hostport, default_port(topology)),
            };
            if host.is_empty() {
                return Err("no host".into());
            }
            shard.hosts.push((host.to_owned(), port));
        }
        if topology == Topology::Cluster && shard.db != 0 {
            return Err("Redis Cluster has only database 0".into());
        }
        Ok(shard)
    }
}

fn default_port(topology: Topology) -> u16 {
    match topology {
        Topology::Sentinel => 26379,
        _ => 6379,
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn redact(entry: &str) -> String {
    entry
        .split(',')
        .map(|p| chorus_protocol::secret::redact_url(p.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Centrifugo accepts a string where a list of addresses is expected.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) if s.trim().is_empty() => Vec::new(),
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(json: &str) -> Redis {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_string_or_a_list_of_addresses_is_one_shard_each() {
        let one = redis(r#"{"address": "redis://127.0.0.1:7001"}"#)
            .shards()
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].hosts, vec![("127.0.0.1".to_owned(), 7001)]);
        let three = redis(r#"{"address": ["127.0.0.1:1", "redis://u:p@127.0.0.1:2/3", "h"]}"#)
            .shards()
            .unwrap();
        assert_eq!(three.len(), 3);
        assert_eq!(three[1].user.as_deref(), Some("u"));
        assert_eq!(three[1].password.as_deref(), Some("p"));
        assert_eq!(three[1].db, 3);
        assert_eq!(three[2].hosts, vec![("h".to_owned(), 6379)]);
        assert_eq!(three[0].topology, Topology::Standalone);
    }

    #[test]
    fn cluster_and_sentinel_entries_list_their_seeds() {
        let c = redis(r#"{"cluster_address": ["127.0.0.1:7000,127.0.0.1:7001"], "password": "s"}"#)
            .shards()
            .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].topology, Topology::Cluster);
        assert_eq!(c[0].hosts.len(), 2);
        assert_eq!(c[0].password.as_deref(), Some("s"));
        let s = redis(r#"{"sentinel_address": ["127.0.0.1"], "sentinel_master_name": "m"}"#)
            .shards()
            .unwrap();
        assert_eq!(s[0].topology, Topology::Sentinel);
        assert_eq!(s[0].hosts, vec![("127.0.0.1".to_owned(), 26379)]);
    }

    #[test]
    fn bad_entries_are_named_without_their_password() {
        for (json, needle) in [
            (r#"{"address": "rediss://h:1"}"#, "TLS"),
            (r#"{"address": "http://h:1"}"#, "host:port"),
            (r#"{"address": "h:port"}"#, "not a number"),
            (r#"{"address": "a:1,b:2"}"#, "one Redis per entry"),
            (r#"{"address": []}"#, "at least one"),
            (r#"{"cluster_address": "h:1/2"}"#, "only database 0"),
            (r#"{"address": "redis://u:hunter2@:1"}"#, "no host"),
        ] {
            let e = redis(json).shards().unwrap_err();
            assert!(e.contains(needle), "{json}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
