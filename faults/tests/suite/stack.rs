//! The whole stack on loopback, each service its own process: Redis, tansu, DynamoDB Local
//! (tables on disk, so it can be killed), a PostgreSQL server of the suite's own (so it can be
//! stopped), two hub nodes over Redis (the second with a small open-files limit, for the
//! connection storm), the API, the sink and the transcriber, with the media store on a small
//! filesystem of its own (for the full disk). The second hub node and the API each run in a
//! network namespace of their own (a [`Pod`]), still on 127.0.0.1 for everyone else, so the
//! network faults can cut, thin or slow their links.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chorus_testkit::api::ApiClient;
use chorus_testkit::dynamodb::DynamoLocal;
use chorus_testkit::free_port;
use chorus_testkit::hub::HubProcess;
use chorus_testkit::pg_server::PostgresServer;
use chorus_testkit::pod::Pod;
use chorus_testkit::process::{service_bin, ServiceProcess};
use chorus_testkit::redis::RedisServer;
use chorus_testkit::speech;
use chorus_testkit::tansu::{unique, Tansu};
use serde_json::json;

pub const HUB_SECRET: &str = "a-hub-secret-of-at-least-32-bytes!!";
pub const HUB_API_KEY: &str = "hub-api-key";
const PROXY_KEY: &str = "proxy-key";

/// The second hub node's open-files limit: its budget is this less a reserve of 256, so a
/// storm of a thousand sockets goes past it.
pub const HUB_B_NOFILE: u64 = 1024;

pub struct Stack {
    pub redis: RedisServer,
    pub tansu: Tansu,
    pub dynamo: DynamoLocal,
    pub postgres: PostgresServer,
    pub hubs: Vec<HubProcess>,
    pub api_process: ServiceProcess,
    /// How the API was started, to start it again with a crash point.
    pub api_env: Vec<(String, String)>,
    pub api_port: u16,
    pub sink: ServiceProcess,
    pub transcriber: ServiceProcess,
    pub api: ApiClient,
    pub media: MediaDisk,
    /// The voice message every voice send uploads: a spoken sentence, OGG/Opus.
    pub clip: Vec<u8>,
    /// The namespaces of the second hub node and of the API; last, so they outlive the
    /// processes in them.
    pub hub_b_pod: Pod,
    pub api_pod: Pod,
}

/// The sentence of the voice clip.
pub const SPOKEN: &str = "the quick brown fox jumps over the lazy dog";

impl Stack {
    pub async fn start() -> Stack {
        let redis = RedisServer::start().await;
        let tansu = Tansu::start().await;
        let dynamo = DynamoLocal::start_on_disk().await;
        let postgres = PostgresServer::start().await;
        postgres.create_database("chorus");
        let media = MediaDisk::mount();
        let (messages, state, audio, images, table) = (
            unique("chat-events"),
            unique("chat-state"),
            unique("chat-audio"),
            unique("chat-images"),
            unique("messages"),
        );
        tansu.create_topic(&messages, 3).await;
        for t in [&state, &audio, &images] {
            tansu.create_topic(t, 1).await;
        }

        let hub_b_pod = Pod::create();
        let api_pod = Pod::create();
        let api_port = free_port();
        api_pod.expose(api_port);
        let api_url = format!("http://127.0.0.1:{api_port}");
        let hub_config = |group: String| {
            json!({
                "engine": {"type": "redis", "redis": {"address": redis.url()}},
                "client": {"token": {"hmac_secret_key": HUB_SECRET}},
                "http_api": {"key": HUB_API_KEY},
                "channel": {
                    "proxy": {"subscribe": {"endpoint": format!("{api_url}/hub/subscribe"),
                              "timeout": "2s",
                              "static_http_headers": {"X-Chorus-Proxy-Key": PROXY_KEY}}},
                    "namespaces": [
                        {"name": "chat", "history_size": 1000, "history_ttl": "600s",
                         "force_recovery": true, "subscribe_proxy_enabled": true,
                         "allow_history_for_subscriber": true},
                        // The slow consumer's firehose: no proxy, no history.
                        {"name": "load", "allow_subscribe_for_client": true}]},
                "consumers": [{"enabled": true, "name": "chats", "type": "kafka", "kafka": {
                    "brokers": [tansu.brokers()], "topics": [messages.clone()],
                    "consumer_group": group, "chat_event_mode": {"enabled": true}}}]
            })
        };
        // One consumer group: on the Redis engine the hubs share the partitions out, each
        // read by one hub and published through Redis to both.
        let group = unique("hubs");
        let hubs = vec![
            HubProcess::with_config(&hub_config(group.clone())).await,
            HubProcess::with_config_in(&hub_config(group), Some(HUB_B_NOFILE), Some(&hub_b_pod))
                .await,
        ];
        let env: Vec<(String, String)> = [
            ("ADDRESS", format!("127.0.0.1:{api_port}")),
            ("DATABASE_URL", postgres.url("chorus")),
            ("JWT_SECRET", "a-jwt-secret-of-at-least-32-bytes!!!".into()),
            // The suite's clients sign in once and do not refresh (the refresh flow has its own
            // tests in api/ and web/): their access tokens last two hours, past the 30-minute
            // soak, instead of the default 15 minutes.
            ("ACCESS_TTL_SECS", "7200".into()),
            ("REDIS__URL", redis.url()),
            ("KAFKA__BROKERS", tansu.brokers()),
            ("KAFKA__MESSAGES_TOPIC", messages.clone()),
            ("KAFKA__STATE_TOPIC", state),
            ("KAFKA__AUDIO_TOPIC", audio.clone()),
            ("KAFKA__IMAGE_TOPIC", images.clone()),
            ("KAFKA__STATE_GROUP", unique("api-state")),
            ("DYNAMODB__ENDPOINT", dynamo.endpoint()),
            ("DYNAMODB__TABLE", table.clone()),
            ("HUB__API_URL", format!("{}/api", hubs[0].http())),
            ("HUB__API_KEY", HUB_API_KEY.into()),
            ("HUB__TOKEN_HMAC_SECRET", HUB_SECRET.into()),
            ("HUB__PROXY_KEY", PROXY_KEY.into()),
            ("OUTBOX__POLL_MS", "100".into()),
            // Longer than the Kafka fault's outage: librdkafka then never times a message
            // out, so it never bumps the idempotent producer's epoch (KIP-360), which tansu
            // 0.6 cannot take (`todo!()` in its InitProducerId, a panic in its produce path,
            // and its storage task is gone: docs/reliability.md). Sends wait instead.
            (
                "KAFKA__SEND_TIMEOUT_MS",
                (crate::held(20) + Duration::from_secs(30))
                    .as_millis()
                    .to_string(),
            ),
            ("LIMITS__SEND_PER_SECOND", "1000".into()),
            ("LIMITS__SEND_BURST", "1000".into()),
            ("LIMITS__REGISTER_PER_MINUTE", "1000".into()),
            ("LIMITS__LOGIN_PER_MINUTE", "1000".into()),
            ("MEDIA__PATH", media.path.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("CHORUS_API__{k}"), v))
        .collect();
        let api_process = ServiceProcess::spawn_in(
            Some(api_pod.name()),
            &service_bin("chorus-api"),
            &["serve"],
            env.clone(),
            api_port,
        )
        .await;
        let sink = ServiceProcess::start(
            &service_bin("chorus-sink"),
            &[],
            "CHORUS_SINK__",
            &[
                ("KAFKA__BROKERS", tansu.brokers()),
                ("KAFKA__TOPIC", messages.clone()),
                ("KAFKA__GROUP", unique("sink")),
                // As the chart runs it: a restart takes its partitions back at once.
                ("KAFKA__INSTANCE_ID", unique("sink-0")),
                ("DYNAMODB__ENDPOINT", dynamo.endpoint()),
                ("DYNAMODB__TABLE", table),
                ("BATCH__FLUSH_INTERVAL_MS", "20".to_owned()),
            ],
        )
        .await;
        let transcriber = ServiceProcess::start(
            &service_bin("chorus-transcriber"),
            &["serve"],
            "CHORUS_TRANSCRIBER__",
            &[
                ("KAFKA__BROKERS", tansu.brokers()),
                ("KAFKA__AUDIO_TOPIC", audio),
                ("KAFKA__IMAGE_TOPIC", images),
                ("KAFKA__MESSAGES_TOPIC", messages),
                ("KAFKA__GROUP", unique("transcriber")),
                // Static membership, as the chart runs it; tansu 0.6 gives a static member
                // with a short session no partition at all, 45 s works (docs/ARCHITECTURE.md).
                ("KAFKA__INSTANCE_ID", unique("transcriber-0")),
                ("KAFKA__SESSION_TIMEOUT_MS", "45000".to_owned()),
                ("MODEL__PATH", speech::model().display().to_string()),
                ("MODEL__THREADS", "1".to_owned()),
                ("MEDIA__PATH", media.path.display().to_string()),
            ],
        )
        .await;
        Stack {
            redis,
            tansu,
            dynamo,
            postgres,
            hubs,
            api_process,
            api_env: env,
            api_port,
            sink,
            transcriber,
            api: ApiClient::new(api_url),
            media,
            clip: speech::ogg_opus(SPOKEN),
            hub_b_pod,
            api_pod,
        }
    }

    pub fn hub_urls(&self) -> Vec<String> {
        self.hubs.iter().map(HubProcess::url).collect()
    }

    /// The API again, with `debug.crash_at` set to `step` when given.
    pub async fn start_api(&self, crash_at: Option<&str>) -> ServiceProcess {
        let mut env = self.api_env.clone();
        if let Some(step) = crash_at {
            env.push(("CHORUS_API__DEBUG__CRASH_AT".into(), step.into()));
        }
        let (bin, ns) = (service_bin("chorus-api"), Some(self.api_pod.name()));
        ServiceProcess::spawn_in(ns, &bin, &["serve"], env, self.api_port).await
    }
}

/// The media store's directory on a tmpfs of its own, small enough to fill: a full disk
/// there fails the API's writes with ENOSPC, as a full volume would, and nothing else's.
pub struct MediaDisk {
    pub path: PathBuf,
}

impl MediaDisk {
    const SIZE: &'static str = "size=64m";

    fn mount() -> MediaDisk {
        let path = std::env::temp_dir().join(unique("chorus-faults-media"));
        std::fs::create_dir_all(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", Self::SIZE, "tmpfs"])
            .arg(&path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "the full-disk fault needs the media store on a filesystem of its own; mounting a tmpfs at {} failed (it needs root): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        MediaDisk { path }
    }

    fn filler(&self) -> PathBuf {
        self.path.join("filler")
    }

    /// Writes a file until the filesystem has no room left.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.filler()).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let block = vec![0u8; chunk];
            while f.write_all(&block).is_ok() {}
        }
        let _ = f.flush();
    }

    pub fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for MediaDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
