//! The API's configuration: defaults, an optional TOML file, then `CHORUS_API__*`
//! environment overrides (`CHORUS_API__KAFKA__BROKERS=127.0.0.1:9092`), validated before
//! anything binds. Every key is documented in `docs/config.md`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use chorus_runtime::config::ConfigError;

/// The prefix of environment overrides; `__` separates the levels of a key.
pub const ENV_PREFIX: &str = "CHORUS_API__";

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `postgres://` URL.
    pub database_url: String,
    /// `ip:port` for HTTP.
    pub address: String,
    /// HMAC secret of access tokens (HS256); at least 32 bytes.
    pub jwt_secret: String,
    #[serde(rename = "access_ttl_secs", deserialize_with = "secs")]
    pub access_ttl: Duration,
    #[serde(rename = "refresh_ttl_secs", deserialize_with = "secs")]
    pub refresh_ttl: Duration,
    /// How long a rotated refresh token still rotates (two tabs refreshing at once) before a
    /// reuse counts as theft.
    #[serde(rename = "refresh_grace_secs", deserialize_with = "secs")]
    pub refresh_grace: Duration,
    pub redis: Redis,
    pub kafka: Kafka,
    /// The history table: `chorus-history`'s `[dynamodb]` section, the sink's too.
    pub dynamodb: chorus_history::DynamoDb,
    pub hub: Hub,
    pub limits: Limits,
    pub outbox: Outbox,
    pub media: Media,
    pub web: Web,
    pub log: chorus_runtime::config::Log,
    pub debug: Debug,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Web {
    /// The built web client (`web/dist`), served at `/`; empty: no page, the API alone.
    pub dir: String,
}

/// For tests of crash safety only: never set in production.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Debug {
    /// A named step (`send.after_commit`, `send.after_ack`, `relay.after_publish`) at which
    /// the process aborts, as a `kill -9` there would end it; empty: never.
    pub crash_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Media {
    /// Where uploaded blobs live (the local-filesystem object store); created if missing.
    pub path: String,
    /// Largest image upload.
    pub max_image_bytes: usize,
    /// Largest image by pixels (width × height), read from its header before anything
    /// decodes it: a small file that would decode to gigabytes is refused.
    pub max_image_pixels: u64,
    /// Largest voice upload.
    pub max_voice_bytes: usize,
    /// Longest voice message; the upload is decoded in full to check it.
    pub max_voice_seconds: u32,
    /// S3 instead of `path` when `s3.bucket` is set; `GET /media` then redirects to a
    /// presigned URL.
    pub s3: chorus_media::store::S3,
}

impl Default for Media {
    fn default() -> Self {
        Media {
            path: "media".into(),
            max_image_bytes: 10 * 1024 * 1024,
            max_image_pixels: 40_000_000,
            max_voice_bytes: 20 * 1024 * 1024,
            max_voice_seconds: 300,
            s3: chorus_media::store::S3::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Redis {
    /// `redis://host:port[/db]`: the membership and display-name caches.
    pub url: String,
    /// Prepended to every key, so several installations (or test runs) share one Redis.
    pub prefix: String,
    /// How long a cached membership answer lives if no event invalidates it first.
    pub cache_ttl_secs: u64,
    /// One command's limit; past it the cache is skipped and PostgreSQL answers.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Kafka {
    pub brokers: String,
    /// Chat events (messages): the topic the hub delivers from and the sink stores.
    pub messages_topic: String,
    /// Chat state events from the outbox.
    pub state_topic: String,
    /// Voice messages queued for the transcriber (through the outbox), apart from the chat
    /// topic so a backlog of audio never delays text.
    pub audio_topic: String,
    /// Image attachments queued for the thumbnail worker (through the outbox).
    pub image_topic: String,
    /// The consumer group of the state-event consumer (cache invalidation, hub calls).
    pub state_group: String,
    /// How long a send waits for the broker's acknowledgement; past it the send is answered
    /// 202 (committed to the outbox, published by the relay).
    pub send_timeout_ms: u64,
    /// How long the state consumer may hold no partition while its group lags before it
    /// rejoins the group (`chorus_runtime::kafka::group`).
    pub rejoin_after_ms: u64,
    /// Static membership of the state consumer's group (`group.instance.id`): a replica
    /// restarted with the same id takes its place at once. Unique per replica; empty:
    /// dynamic.
    pub state_instance_id: String,
    /// Any other librdkafka property, passed through.
    pub librdkafka: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hub {
    /// The hub's server API, e.g. `http://127.0.0.1:8000/api`.
    pub api_url: String,
    /// The hub's `http_api.key`.
    pub api_key: String,
    /// The hub's `client.token.hmac_secret_key`: connection and subscription tokens are
    /// signed with it.
    pub token_hmac_secret: String,
    pub connection_token_ttl_secs: u64,
    /// Off by default: with the subscribe proxy every subscribe, recovery and reconnect asks
    /// PostgreSQL, so a removed member is refused at once. A token is checked by the hub
    /// alone and stays good until it expires, so issuing them is opt-in and short-lived.
    pub subscription_tokens: bool,
    pub subscription_token_ttl_secs: u64,
    /// The hub's WebSocket URL as a browser reaches it, served at `GET /config`; empty: the
    /// host of `api_url` with `ws://` (`wss://` for https) and `/connection/websocket`.
    pub public_url: String,
    /// What the hub sends as `X-Chorus-Proxy-Key` (its `static_http_headers`) on subscribe
    /// proxy calls; required (an empty key would make `/hub/subscribe` an open membership
    /// lookup).
    pub proxy_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Login attempts per username per minute.
    pub login_per_minute: u32,
    /// Sends per user: a bucket of `send_burst`, refilled at `send_per_second`.
    pub send_per_second: u32,
    pub send_burst: u32,
    /// Longest text of a message, in characters.
    pub max_text_chars: usize,
    /// Registrations per client address per minute (each one hashes a password).
    pub register_per_minute: u32,
    /// Refreshes per client address per minute.
    pub refresh_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Outbox {
    /// How often an idle relay looks for new rows (a commit also wakes it at once).
    pub poll_ms: u64,
    /// Rows published per relay round.
    pub batch: i64,
    /// Idempotency keys of sends are kept this long, then pruned (with expired refresh
    /// tokens) by the relay's housekeeping.
    pub send_key_ttl_secs: u64,
}

fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "postgres://postgres@127.0.0.1:5432/chorus".into(),
            address: "127.0.0.1:8080".into(),
            jwt_secret: String::new(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::from_secs(10),
            redis: Redis::default(),
            kafka: Kafka::default(),
            dynamodb: chorus_history::DynamoDb {
                create_table: false,
                ..Default::default()
            },
            hub: Hub::default(),
            limits: Limits::default(),
            outbox: Outbox::default(),
            media: Media::default(),
            web: Web::default(),
            log: Default::default(),
            debug: Debug::default(),
        }
    }
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "chorus".into(),
            cache_ttl_secs: 300,
            timeout_ms: 500,
        }
    }
}

impl Default for Kafka {
    fn default() -> Self {
        Kafka {
            brokers: "127.0.0.1:9092".into(),
            messages_topic: "chat.events".into(),
            state_topic: "chat.state".into(),
            audio_topic: "chat.audio".into(),
            image_topic: "chat.images".into(),
            state_group: "chorus-api-state".into(),
            send_timeout_ms: 5_000,
            rejoin_after_ms: chorus_runtime::kafka::group::DEFAULT_REJOIN_AFTER_MS,
            state_instance_id: String::new(),
            librdkafka: BTreeMap::new(),
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            api_url: "http://127.0.0.1:8000/api".into(),
            api_key: String::new(),
            token_hmac_secret: String::new(),
            connection_token_ttl_secs: 3600,
            subscription_tokens: false,
            subscription_token_ttl_secs: 60,
            public_url: String::new(),
            proxy_key: String::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            login_per_minute: 10,
            send_per_second: 5,
            send_burst: 20,
            max_text_chars: 4000,
            register_per_minute: 5,
            refresh_per_minute: 30,
        }
    }
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            poll_ms: 500,
            batch: 100,
            send_key_ttl_secs: 24 * 3600,
        }
    }
}

impl Config {
    /// Defaults, then the file (if any), then `CHORUS_API__*` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let config: Config =
            chorus_runtime::config::load_layers(path, env, ENV_PREFIX, &["librdkafka"])?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.jwt_secret.len() < 32 {
            return bad("jwt_secret must be at least 32 bytes");
        }
        if self.address.parse::<std::net::SocketAddr>().is_err() {
            return bad("address must be ip:port");
        }
        if !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            return bad("database_url must be a postgres:// URL");
        }
        if self.access_ttl.is_zero() || self.refresh_ttl <= self.access_ttl {
            return bad("access_ttl_secs must be positive and shorter than refresh_ttl_secs");
        }
        if !self.redis.url.starts_with("redis://") {
            return bad("redis.url must be a redis:// URL");
        }
        if self.kafka.brokers.trim().is_empty()
            || self.kafka.messages_topic.is_empty()
            || self.kafka.state_topic.is_empty()
            || self.kafka.state_group.is_empty()
        {
            return bad("kafka.brokers, messages_topic, state_topic and state_group must be set");
        }
        if self.kafka.messages_topic == self.kafka.state_topic
            || self.kafka.audio_topic == self.kafka.messages_topic
            || self.kafka.audio_topic == self.kafka.state_topic
            || self.kafka.audio_topic.is_empty()
        {
            return bad("kafka.audio_topic must be set, and messages_topic, state_topic and audio_topic must differ");
        }
        let image = self.kafka.image_topic.as_str();
        let others = [
            &self.kafka.messages_topic,
            &self.kafka.state_topic,
            &self.kafka.audio_topic,
        ];
        if !image.is_empty() && others.iter().any(|t| t.as_str() == image) {
            return bad("kafka.image_topic must differ from the other topics (or be empty)");
        }
        if !self.hub.api_url.starts_with("http://") && !self.hub.api_url.starts_with("https://") {
            return bad("hub.api_url must be an http:// or https:// URL");
        }
        if !self.hub.public_url.is_empty()
            && !self.hub.public_url.starts_with("ws://")
            && !self.hub.public_url.starts_with("wss://")
        {
            return bad("hub.public_url must be a ws:// or wss:// URL (or empty)");
        }
        if !self.hub.token_hmac_secret.is_empty() && self.hub.token_hmac_secret.len() < 32 {
            return bad("hub.token_hmac_secret must be at least 32 bytes");
        }
        if self.hub.proxy_key.is_empty() {
            return bad("hub.proxy_key must be set: the hub's subscribe proxy sends it, and without it /hub/subscribe would answer anyone");
        }
        if self.hub.subscription_tokens
            && !(1..=3600).contains(&self.hub.subscription_token_ttl_secs)
        {
            return bad("hub.subscription_token_ttl_secs must be 1 to 3600");
        }
        if self.limits.login_per_minute == 0
            || self.limits.register_per_minute == 0
            || self.limits.refresh_per_minute == 0
            || self.limits.send_per_second == 0
            || self.limits.send_burst == 0
        {
            return bad("limits must be positive");
        }
        if self.outbox.poll_ms == 0 || self.outbox.batch <= 0 || self.outbox.send_key_ttl_secs == 0
        {
            return bad("outbox.poll_ms and outbox.batch must be positive");
        }
        if self.media.path.is_empty()
            || self.media.max_image_bytes == 0
            || self.media.max_voice_bytes == 0
            || self.media.max_voice_seconds == 0
        {
            return bad(
                "media.path, max_image_bytes, max_voice_bytes and max_voice_seconds must be set",
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format is text or json");
        }
        Ok(())
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
    fn file_then_environment_and_every_value_checked() {
        let secret = "s".repeat(32);
        let dir = std::env::temp_dir().join(format!("chorus-api-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("api.toml");
        std::fs::write(
            &file,
            "refresh_grace_secs = 3\n[kafka]\nbrokers = \"a:1\"\n[hub]\nproxy_key = \"p\"\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&file),
            env(&[
                ("CHORUS_API__JWT_SECRET", &secret),
                ("CHORUS_API__KAFKA__BROKERS", "b:2"),
                ("CHORUS_API__KAFKA__LIBRDKAFKA__LINGER_MS", "5"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.refresh_grace, Duration::from_secs(3));
        assert_eq!(c.kafka.brokers, "b:2");
        assert_eq!(c.kafka.librdkafka["linger_ms"], "5");
        assert_eq!(c.hub.proxy_key, "p");
        let short = Config::load(None, env(&[("CHORUS_API__JWT_SECRET", "short")]))
            .expect_err("short secret");
        assert!(short.to_string().contains("jwt_secret"), "{short}");
        let unknown =
            Config::load(None, env(&[("CHORUS_API__JWT_SECRETS", &secret)])).expect_err("typo");
        assert!(unknown.to_string().contains("jwt_secrets"), "{unknown}");
        let bad = Config::load(
            None,
            env(&[
                ("CHORUS_API__JWT_SECRET", &secret),
                ("CHORUS_API__ACCESS_TTL_SECS", "soon"),
            ]),
        )
        .expect_err("not a number");
        assert!(bad.to_string().contains("access_ttl_secs"), "{bad}");
        let same = Config::load(
            None,
            env(&[
                ("CHORUS_API__JWT_SECRET", &secret),
                ("CHORUS_API__KAFKA__STATE_TOPIC", "chat.events"),
            ]),
        )
        .expect_err("same topics");
        assert!(same.to_string().contains("must differ"), "{same}");
        let images = Config::load(
            None,
            env(&[
                ("CHORUS_API__JWT_SECRET", &secret),
                ("CHORUS_API__KAFKA__IMAGE_TOPIC", "chat.audio"),
            ]),
        )
        .expect_err("images on the audio topic");
        assert!(images.to_string().contains("image_topic"), "{images}");
        let open = Config::load(
            None,
            env(&[
                ("CHORUS_API__JWT_SECRET", &secret),
                ("CHORUS_API__HUB__PROXY_KEY", ""),
            ]),
        )
        .expect_err("an empty proxy key");
        assert!(open.to_string().contains("hub.proxy_key"), "{open}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
