//! `chorus-sink` as its own process, configured through `CHORUS_SINK__*` variables.

use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct SinkProcess {
    child: Option<Child>,
    pub port: u16,
    env: Vec<(String, String)>,
    log: std::path::PathBuf,
}

impl SinkProcess {
    /// Starts the sink with these `CHORUS_SINK__*` settings (keys without the prefix).
    pub async fn start(settings: &[(&str, String)]) -> SinkProcess {
        let port = super::free_port();
        let mut env: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (format!("CHORUS_SINK__{k}"), v.clone()))
            .collect();
        env.push((
            "CHORUS_SINK__HTTP__ADDRESS".into(),
            format!("127.0.0.1:{port}"),
        ));
        let log = std::env::temp_dir().join(super::tansu::unique("chorus-sink-log"));
        let mut s = SinkProcess {
            child: None,
            port,
            env,
            log,
        };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_chorus-sink"))
            .envs(self.env.iter().cloned())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        assert!(
            super::listening(self.port, 600).await,
            "chorus-sink did not listen; log in {}",
            self.log.display()
        );
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        c.wait().unwrap().success()
    }

    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    pub async fn health(&self) -> Value {
        let r = reqwest::get(format!("http://127.0.0.1:{}/health", self.port))
            .await
            .unwrap();
        serde_json::from_str(&r.text().await.unwrap()).unwrap()
    }

    /// The sum of a metric's samples whose labels contain `labels` (`""` for all).
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with(name)
                    && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
                    && l.contains(labels)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.log);
    }
}
