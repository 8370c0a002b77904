//! Each consumer's health, as `/health` reports it.

use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub name: String,
    /// `starting`, `ok`, `replaying`, `broker_unreachable` or `retrying`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Records behind the end of the assigned partitions, summed.
    pub lag: i64,
}

impl Snapshot {
    pub fn healthy(&self) -> bool {
        matches!(self.status, "ok" | "replaying")
    }
}

/// Shared between a consumer's tasks and the health endpoint.
pub struct Status {
    inner: Mutex<Snapshot>,
}

impl Status {
    pub fn new(name: &str) -> Arc<Status> {
        Arc::new(Status {
            inner: Mutex::new(Snapshot {
                name: name.to_owned(),
                status: "starting",
                error: None,
                lag: 0,
            }),
        })
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.lock().clone()
    }

    pub fn set(&self, status: &'static str, error: Option<String>) {
        let mut s = self.inner.lock();
        s.status = status;
        s.error = error;
    }

    /// Marks the broker reachable again, unless a record is still being retried.
    pub fn reachable(&self, replaying: bool) {
        let mut s = self.inner.lock();
        if s.status != "retrying" {
            s.status = if replaying { "replaying" } else { "ok" };
            s.error = None;
        }
    }

    /// A record that was being retried went through.
    pub fn retried(&self) {
        let mut s = self.inner.lock();
        if s.status == "retrying" {
            s.status = "ok";
            s.error = None;
        }
    }

    pub fn set_lag(&self, lag: i64) {
        self.inner.lock().lag = lag;
    }
}

/// Every consumer of a node.
#[derive(Default)]
pub struct Registry {
    all: Mutex<Vec<Arc<Status>>>,
}

impl Registry {
    pub fn add(&self, s: Arc<Status>) {
        self.all.lock().push(s);
    }

    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.all.lock().iter().map(|s| s.snapshot()).collect()
    }
}
