//! The sink's configuration: defaults, an optional TOML file, then `CHORUS_SINK__*`
//! environment overrides (`CHORUS_SINK__DYNAMODB__ENDPOINT=http://127.0.0.1:8100`), validated
//! before anything connects. Every key is documented in `docs/config.md`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub use chorus_history::DynamoDb;
use chorus_runtime::config::load_layers;
pub use chorus_runtime::config::{ConfigError, Http, Log};
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

impl Default for Config {
    fn default() -> Self {
        Config {
            kafka: Kafka::default(),
            dynamodb: DynamoDb::default(),
            batch: Batch::default(),
            http: Http::at("127.0.0.1:9101"),
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
            rejoin_after_ms: chorus_runtime::kafka::group::DEFAULT_REJOIN_AFTER_MS,
            instance_id: String::new(),
            librdkafka: BTreeMap::new(),
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
        self.dynamodb.validate().map_err(ConfigError::Invalid)?;
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
        self.http.validate()?;
        self.log.validate()?;
        Ok(())
    }

    pub fn dead_letter_topic(&self) -> String {
        chorus_runtime::kafka::dlq::topic_for(&self.kafka.dead_letter_topic, &self.kafka.topic)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
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
