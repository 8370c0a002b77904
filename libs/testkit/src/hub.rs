//! `chorus-hub` as its own process, from a Centrifugo-style JSON config: several nodes of a
//! cluster that a test can kill, or a hub delivering a chat topic live for a test of another
//! service that watches what a client would see.

use std::path::Path;

use serde_json::{json, Value};

use crate::pod::Pod;
use crate::process::ServiceProcess;

pub struct HubProcess {
    process: ServiceProcess,
    pub port: u16,
    /// The config file; removed with the process.
    config: Option<std::path::PathBuf>,
}

impl HubProcess {
    /// `program --config config` on a free loopback port. The port opens once the node is
    /// ready (consumers replayed, engine connected), so this returns a serving hub.
    pub async fn start(program: &Path, config: &Path) -> HubProcess {
        Self::start_limited(program, config, None, None).await
    }

    /// [`HubProcess::start`] inside `pod`, still reached on 127.0.0.1 from the host.
    pub async fn start_in(program: &Path, config: &Path, pod: &Pod) -> HubProcess {
        Self::start_limited(program, config, None, Some(pod)).await
    }

    /// [`HubProcess::start`] with its open-files limit (soft and hard) set to `nofile` by
    /// `prlimit`, so a test can reach the hub's descriptor budget with a few hundred sockets;
    /// inside `pod` when given (still reached on 127.0.0.1:`port` from the host).
    async fn start_limited(
        program: &Path,
        config: &Path,
        nofile: Option<u64>,
        pod: Option<&Pod>,
    ) -> HubProcess {
        let port = crate::free_port();
        if let Some(pod) = pod {
            pod.expose(port);
        }
        let netns = pod.map(Pod::name);
        let env = vec![
            ("CHORUS_HUB__HTTP_SERVER__PORT".to_owned(), port.to_string()),
            (
                "CHORUS_HUB__HTTP_SERVER__ADDRESS".to_owned(),
                "127.0.0.1".to_owned(),
            ),
        ];
        let config = config.display().to_string();
        let process = match nofile {
            None => {
                ServiceProcess::spawn_in(netns, program, &["--config", &config], env, port).await
            }
            // prlimit execs the hub: the process (and its pid) is the hub's own.
            Some(n) => {
                let limit = format!("--nofile={n}:{n}");
                let hub = program.display().to_string();
                let args = [limit.as_str(), hub.as_str(), "--config", config.as_str()];
                let prlimit = Path::new("/usr/bin/prlimit");
                ServiceProcess::spawn_in(netns, prlimit, &args, env, port).await
            }
        };
        HubProcess {
            process,
            port,
            config: None,
        }
    }

    /// The workspace's `chorus-hub` (see [`crate::process::service_bin`]) with `config`.
    pub async fn with_config(config: &Value) -> HubProcess {
        Self::with_config_limited(config, None).await
    }

    /// [`HubProcess::with_config`], with the open-files limit `nofile` when given.
    pub async fn with_config_limited(config: &Value, nofile: Option<u64>) -> HubProcess {
        Self::with_config_in(config, nofile, None).await
    }

    /// [`HubProcess::with_config_limited`], inside `pod` when given.
    pub async fn with_config_in(
        config: &Value,
        nofile: Option<u64>,
        pod: Option<&Pod>,
    ) -> HubProcess {
        let path = std::env::temp_dir().join(format!("{}.json", crate::unique("chorus-hub")));
        std::fs::write(&path, config.to_string()).unwrap();
        let program = crate::process::service_bin("chorus-hub");
        let mut hub = Self::start_limited(&program, &path, nofile, pod).await;
        hub.config = Some(path);
        hub
    }

    /// The running hub's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The hub's resident set size in bytes.
    pub fn resident_bytes(&self) -> u64 {
        self.process.resident_bytes()
    }

    /// The sum of a metric's samples whose labels contain `labels` (`""` for all).
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        self.process.metric(name, labels).await
    }

    /// A hub that delivers `topic` live (chat-event mode, its own consumer `group`) with
    /// client-side subscriptions to `chat:*`; tokens are signed with `client::SECRET`.
    pub async fn live(brokers: &str, topic: &str, group: &str) -> HubProcess {
        Self::with_config(&json!({
            "client": {"token": {"hmac_secret_key": crate::client::SECRET},
                       "ping_interval": "120s", "pong_timeout": "20s"},
            "http_api": {"key": "k"},
            "channel": {"namespaces": [{"name": "chat", "history_size": 100,
                                        "history_ttl": "300s",
                                        "allow_subscribe_for_client": true}]},
            "consumers": [{"enabled": true, "name": "chats", "type": "kafka", "kafka": {
                "brokers": [brokers], "topics": [topic], "consumer_group": group,
                "chat_event_mode": {"enabled": true}}}]
        }))
        .await
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/connection/websocket", self.port)
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye, no commit, presence left to expire.
    pub fn kill(&mut self) {
        self.process.kill9();
    }

    /// `kill -9`, then the same node again at once, on the same port: its clients reconnect
    /// to it and recover.
    pub async fn restart(&mut self) {
        self.process.restart().await;
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.process.kill9();
        if let Some(c) = &self.config {
            let _ = std::fs::remove_file(c);
        }
    }
}
