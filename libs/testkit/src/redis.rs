//! A real Redis server per test, on a free loopback port, that a test can stop and start
//! again (empty, as a Redis without persistence comes back), alone or as a replica, a
//! cluster node or a Sentinel ([`crate::redis_topology`]).

use std::process::{Child, Command, Stdio};

pub struct RedisServer {
    pub port: u16,
    /// Arguments after the port and bind address (`--replicaof`, `--cluster-enabled`...).
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        RedisServer::start_with(&[]).await
    }

    /// A server with extra `redis-server` arguments.
    pub async fn start_with(extra: &[&str]) -> RedisServer {
        RedisServer::start_on(crate::free_port(), extra).await
    }

    pub async fn start_on(port: u16, extra: &[&str]) -> RedisServer {
        let mut r = RedisServer {
            port,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        // A config file (a Sentinel's) must come first.
        let file = self.extra.first().is_some_and(|a| a.ends_with(".conf"));
        if file {
            command.arg(&self.extra[0]);
        }
        command.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"]);
        if !self.extra.iter().any(|a| a == "--sentinel") {
            command.args(["--save", "", "--appendonly", "no"]);
        }
        command
            .args(&self.extra[usize::from(file)..])
            .stdout(Stdio::null());
        let child = command
            .spawn()
            .expect("redis-server is installed (Debian package redis-server)");
        self.child = Some(child);
        assert!(
            crate::listening(self.port, 200).await,
            "redis-server did not listen on {}",
            self.port
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis-cli` against this server; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: Redis loses everything it held.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the port still accepts, nothing answers (a partition from the clients' side).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("redis-server is running").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-cli -p port args...`: its standard output (empty when it failed).
pub fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
