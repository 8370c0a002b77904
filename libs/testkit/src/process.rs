//! A service binary as its own process, configured through `CHORUS_<SERVICE>__*` variables
//! and logging to a file, so a test can `kill -9` it at the worst moment, restart it at once,
//! stop it with SIGTERM, and read its `/health` and `/metrics`. A crate's tests name their
//! own binary (`env!("CARGO_BIN_EXE_...")`), and another service's through [`service_bin`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct ServiceProcess {
    child: Option<Child>,
    /// Where `/health` and `/metrics` are served.
    pub port: u16,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The network namespace it runs in (`ip netns exec`), when in a [`crate::pod::Pod`].
    netns: Option<String>,
    pub log: PathBuf,
}

impl ServiceProcess {
    /// Starts `program args` with `settings` as `<prefix>KEY` variables (keys without the
    /// prefix) and `<prefix>HTTP__ADDRESS` on a free port, and waits until it listens there:
    /// how the worker services (the sink, the transcriber) are configured.
    pub async fn start(
        program: &Path,
        args: &[&str],
        prefix: &str,
        settings: &[(&str, String)],
    ) -> ServiceProcess {
        let port = crate::free_port();
        let mut env: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
            .collect();
        env.push((
            format!("{prefix}HTTP__ADDRESS"),
            format!("127.0.0.1:{port}"),
        ));
        Self::spawn_with(program, args, env, port).await
    }

    /// Starts `program args` with `env` and waits until it listens on `port`.
    pub async fn spawn_with(
        program: &Path,
        args: &[&str],
        env: Vec<(String, String)>,
        port: u16,
    ) -> ServiceProcess {
        Self::spawn_in(None, program, args, env, port).await
    }

    /// [`ServiceProcess::spawn_with`] inside the pod `netns` when given (`ip netns exec`
    /// execs the program: the pid is the service's own). The pod must expose `port`.
    pub async fn spawn_in(
        netns: Option<&str>,
        program: &Path,
        args: &[&str],
        mut env: Vec<(String, String)>,
        port: u16,
    ) -> ServiceProcess {
        env.push(("NO_COLOR".into(), "1".into()));
        let name = program
            .file_name()
            .map_or("service".into(), |n| n.to_string_lossy());
        let log = std::env::temp_dir().join(crate::unique(&format!("{name}-log")));
        let mut s = ServiceProcess {
            child: None,
            port,
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env,
            netns: netns.map(str::to_owned),
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
        let mut command = match &self.netns {
            None => Command::new(&self.program),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.program);
                c
            }
        };
        let child = command
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        if !crate::listening(self.port, 600).await {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "{} did not listen on {}; log tail:\n{}",
                self.program.display(),
                self.port,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// SIGKILL: no flush, no commit, no goodbye to the group.
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

    /// `kill -9`, then the same command again at once.
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process is running").id()
    }

    /// The running process's resident set size, from `/proc/<pid>/statm`.
    pub fn resident_bytes(&self) -> u64 {
        resident_bytes(self.pid())
    }
}

/// A process's resident set size in bytes, from `/proc/<pid>/statm` (0 once it is gone).
pub fn resident_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Another service's binary, which a test runs as the real process it ships as (no service
/// crate depends on another, even in its tests): `CHORUS_<NAME>_BIN` (`CHORUS_HUB_BIN` for
/// `chorus-hub`), else the workspace's build of it beside this test executable.
/// `scripts/test` builds every binary before the tests run; by hand, `cargo build --workspace
/// --bins` first, or the test runs whatever build of that service is there.
pub fn service_bin(name: &str) -> PathBuf {
    let var = format!(
        "CHORUS_{}_BIN",
        name.trim_start_matches("chorus-")
            .to_ascii_uppercase()
            .replace('-', "_")
    );
    let path = std::env::var_os(&var)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/deps/<test> → target/<profile>/<name>
            let exe = std::env::current_exe().expect("invariant: a test knows its executable");
            exe.parent()
                .and_then(Path::parent)
                .expect("invariant: tests run from target/<profile>/deps")
                .join(name)
        });
    assert!(
        path.is_file(),
        "{name} is not built at {} (scripts/test builds it; or `cargo build --workspace --bins`, or set {var})",
        path.display()
    );
    path
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.log);
    }
}
