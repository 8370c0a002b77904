//! The sink's configuration: defaults, an optional TOML file, then `CHORUS_SINK__*`
//! environment overrides (`CHORUS_SINK__DYNAMODB__ENDPOINT=http://127.0.0.1:8100`), validated
//! before anything connects. Every key is documented in `docs/config.md`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The prefix of environment overrides; `__` separates the levels of a key.
pub const ENV_PREFIX: &str = "CHORUS_SINK__";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kafka: Kafka,
    pub dynamodb: DynamoDb,
    pub batch: Batch,
    pub http: Http,
    pub log: Log,
    /// How long a stopping sink may spend flushing and committing what it holds.
    pub shutdown_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Kafka {
    /// Bootstrap brokers, comma-separated (`host:port,host:port`).
    pub brokers: String,
    /// The chat event topic (the one the API produces to and the hub delivers from).
    pub topic: String,
    /// The sink's own consumer group: its committed offsets are what is durably stored.
    pub group: String,
    /// Where records that can never be stored go; empty means `<topic>.dlq`.
    pub dead_letter_topic: String,
    /// librdkafka's prefetch bound per partition; with the pending-record bound it caps what
    /// the sink holds in memory while DynamoDB is down.
    pub queued_max_kbytes: u32,
    /// How long this sink may hold no partition while its group lags before it rejoins the
    /// group (see `group`); longer than the session timeout.
    pub rejoin_after_ms: u64,
    /// Static group membership (`group.instance.id`): a sink restarted with the same id takes
    /// its predecessor's place at once instead of waiting out its session. Unique per
    /// process (a second process with the same id fences the first); empty: dynamic.
    pub instance_id: String,
    /// Any other librdkafka property, passed through.
    pub librdkafka: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamoDb {
    /// A DynamoDB Local (or other) endpoint; empty means real AWS in `region`.
    pub endpoint: String,
    pub region: String,
    pub table: String,
    /// Create the table (on-demand capacity) when it is missing.
    pub create_table: bool,
    /// Static credentials; empty means the AWS default chain (environment, profile, web
    /// identity, instance metadata). With an endpoint and no keys, fixed local keys are used:
    /// DynamoDB Local accepts any.
    pub access_key_id: String,
    pub secret_access_key: String,
    /// One HTTP attempt's limit: a DynamoDB that accepts connections but never answers (a
    /// stopped process) shows as down after this long.
    pub attempt_timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Batch {
    /// Records per flush; a flush is split into BatchWriteItem calls of at most 25 items.
    pub max_items: usize,
    /// How long the first record of a flush may wait for more.
    pub flush_interval_ms: u64,
    /// BatchWriteItem (and UpdateItem) calls in flight at once.
    pub concurrency: usize,
    /// Records read from Kafka but not yet written; past it the sink stops reading.
    pub max_pending: usize,
    /// Retry delays: exponential from `backoff_min_ms` to `backoff_max_ms`, full jitter.
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// `/health` and `/metrics`.
    pub address: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter (`info`, `chorus_sink=debug`).
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kafka: Kafka::default(),
            dynamodb: DynamoDb::default(),
            batch: Batch::default(),
            http: Http::default(),
            log: Log::default(),
            shutdown_timeout_ms: 10_000,
        }
    }
}

impl Default for Kafka {
    fn default() -> Self {
        Kafka {
            brokers: "127.0.0.1:9092".into(),
            topic: "chat.events".into(),
            group: "chorus-sink".into(),
            dead_letter_topic: String::new(),
            queued_max_kbytes: 8192,
            rejoin_after_ms: crate::group::DEFAULT_REJOIN_AFTER_MS,
            instance_id: String::new(),
            librdkafka: BTreeMap::new(),
        }
    }
}

impl Default for DynamoDb {
    fn default() -> Self {
        DynamoDb {
            endpoint: String::new(),
            region: "us-east-1".into(),
            table: "messages".into(),
            create_table: true,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            attempt_timeout_ms: 5_000,
            connect_timeout_ms: 1_000,
        }
    }
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            max_items: 5_000,
            flush_interval_ms: 50,
            concurrency: 8,
            max_pending: 20_000,
            backoff_min_ms: 50,
            backoff_max_ms: 5_000,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            address: "127.0.0.1:9101".into(),
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the file (if any), then `CHORUS_SINK__*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let config: Config = load_layers(path, env, ENV_PREFIX, &["librdkafka"])?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.kafka.brokers.trim().is_empty() {
            return bad("kafka.brokers is empty");
        }
        if self.kafka.topic.is_empty() || self.kafka.group.is_empty() {
            return bad("kafka.topic and kafka.group must be set");
        }
        if self.dynamodb.table.is_empty() {
            return bad("dynamodb.table is empty");
        }
        if !self.dynamodb.endpoint.is_empty()
            && !self.dynamodb.endpoint.starts_with("http://")
            && !self.dynamodb.endpoint.starts_with("https://")
        {
            return bad("dynamodb.endpoint must be an http:// or https:// URL");
        }
        if self.dynamodb.access_key_id.is_empty() != self.dynamodb.secret_access_key.is_empty() {
            return bad("dynamodb.access_key_id and secret_access_key go together");
        }
        let b = &self.batch;
        if b.max_items == 0 || b.concurrency == 0 {
            return bad("batch.max_items and batch.concurrency must be at least 1");
        }
        if b.max_pending < b.max_items {
            return bad("batch.max_pending must be at least batch.max_items");
        }
        if b.backoff_min_ms == 0 || b.backoff_max_ms < b.backoff_min_ms {
            return bad("batch.backoff_min_ms must be positive and at most backoff_max_ms");
        }
        if self.http.address.parse::<std::net::SocketAddr>().is_err() {
            return bad("http.address must be ip:port");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format is text or json");
        }
        Ok(())
    }

    pub fn dead_letter_topic(&self) -> String {
        if self.kafka.dead_letter_topic.is_empty() {
            format!("{}.dlq", self.kafka.topic)
        } else {
            self.kafka.dead_letter_topic.clone()
        }
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

/// Any service's config from its layers: serde defaults, then the TOML file (if any), then
/// `<prefix>SECTION__KEY` variables from `env`. Values under a section named in
/// `string_sections` stay strings (librdkafka properties are strings whatever they look like).
/// The API reads its config this way too.
pub fn load_layers<T: serde::de::DeserializeOwned>(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    prefix: &str,
    string_sections: &[&str],
) -> Result<T, ConfigError> {
    let mut root = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", p.display())))?
        }
        None => toml::Table::new(),
    };
    for (name, value) in env {
        let Some(key) = name.strip_prefix(prefix) else {
            continue;
        };
        let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
        let value = if path.iter().any(|p| string_sections.contains(&p.as_str())) {
            toml::Value::String(value)
        } else {
            env_value(&value)
        };
        set_path(&mut root, &path, value)
            .map_err(|e| ConfigError::Parse(format!("{name}: {e}")))?;
    }
    T::deserialize(toml::Value::Table(root)).map_err(|e| ConfigError::Parse(e.to_string()))
}

/// An environment value as TOML when it reads as a number or a boolean, else a string.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(n) = raw.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut at = table;
    for p in parents {
        at = at
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{p} is not a section"))?;
    }
    at.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_the_file_and_the_defaults() {
        let dir = std::env::temp_dir().join(format!("chorus-sink-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("sink.toml");
        std::fs::write(
            &file,
            "[kafka]\ntopic = \"chats\"\n[dynamodb]\ntable = \"t1\"\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&file),
            env(&[
                ("CHORUS_SINK__DYNAMODB__TABLE", "t2"),
                ("CHORUS_SINK__BATCH__CONCURRENCY", "3"),
                ("CHORUS_SINK__DYNAMODB__CREATE_TABLE", "false"),
                ("CHORUS_SINK__KAFKA__LIBRDKAFKA__FETCH.MIN.BYTES", "10"),
                ("OTHER", "x"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.kafka.topic, "chats");
        assert_eq!(c.dynamodb.table, "t2");
        assert_eq!(c.batch.concurrency, 3);
        assert!(!c.dynamodb.create_table);
        assert_eq!(c.kafka.librdkafka["fetch.min.bytes"], "10");
        assert_eq!(c.dead_letter_topic(), "chats.dlq");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let e = Config::load(None, env(&[("CHORUS_SINK__BATCH__MAX_ITEMS", "0")]))
            .expect_err("refused");
        assert!(e.to_string().contains("batch.max_items"), "{e}");
        let e = Config::load(None, env(&[("CHORUS_SINK__KAFKA__NOPE", "1")])).expect_err("unknown");
        assert!(e.to_string().contains("nope"), "{e}");
        let e = Config::load(
            None,
            env(&[("CHORUS_SINK__DYNAMODB__ENDPOINT", "localhost:8100")]),
        )
        .expect_err("not a url");
        assert!(e.to_string().contains("dynamodb.endpoint"), "{e}");
    }
}
