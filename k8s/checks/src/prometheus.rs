//! Debian's Prometheus on a free loopback port, scraping the given targets every second.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

pub struct Prometheus {
    pub url: String,
    child: Child,
    dir: PathBuf,
    http: reqwest::Client,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Prometheus {
    /// Starts scraping `(job, "host:port")` targets at `/metrics`; returns once it is ready.
    pub async fn start(targets: &[(&str, String)]) -> anyhow::Result<Prometheus> {
        let dir = std::env::temp_dir().join(format!("chorus-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let port = free_port()?;
        let bin = std::env::var("CHORUS_PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
        let child = Command::new(&bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log"))?)
            .spawn()
            .with_context(|| {
                format!("starting {bin} (Debian's prometheus; scripts/lib/k8s.sh installs it)")
            })?;
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
            http: reqwest::Client::new(),
        };
        for _ in 0..300 {
            if let Ok(r) = p.http.get(format!("{}/-/ready", p.url)).send().await {
                if r.status().is_success() {
                    return Ok(p);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("prometheus did not become ready: {}", p.log())
    }

    /// An instant query's result vector (or matrix), or the error Prometheus gave.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let text = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await?
            .text()
            .await?;
        let r: Value = serde_json::from_str(&text)?;
        if r["status"] != "success" {
            bail!("{expr}: {}", r["error"]);
        }
        Ok(r["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
