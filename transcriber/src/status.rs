//! What `/health` reports; the endpoints are the sink's (`chorus_sink::server`).

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde_json::json;

use crate::metrics::Metrics;

#[derive(Default)]
pub struct Status {
    pub metrics: Metrics,
    stopping: AtomicBool,
    kafka_up: AtomicBool,
    /// The last step that failed and is being retried, until one succeeds.
    trouble: Mutex<Option<String>>,
}

impl Status {
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn kafka(&self, up: bool) {
        self.kafka_up.store(up, Ordering::Relaxed);
        self.metrics.kafka_up.set(i64::from(up));
    }

    pub fn trouble(&self, what: Option<String>) {
        *self.trouble.lock() = what;
    }

    /// 200 while serving (`ok`, or `degraded` while a step is retried: jobs wait, none is
    /// lost), 503 while shutting down.
    pub fn health(&self) -> (bool, serde_json::Value) {
        let trouble = self.trouble.lock().clone();
        let kafka = self.kafka_up.load(Ordering::Relaxed);
        let status = if self.stopping.load(Ordering::Relaxed) {
            "shutting_down"
        } else if kafka && trouble.is_none() {
            "ok"
        } else {
            "degraded"
        };
        let mut body = json!({ "status": status, "kafka": { "up": kafka } });
        if let Some(t) = trouble {
            body["retrying"] = json!(t);
        }
        (status != "shutting_down", body)
    }
}

impl chorus_sink::server::Probe for Status {
    fn health(&self) -> (bool, serde_json::Value) {
        Status::health(self)
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}
