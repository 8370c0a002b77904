//! What `/health` reports; the endpoints are `chorus_runtime::server`'s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chorus_runtime::kafka::group::GroupHealth;

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
    /// Each worker's group liveness, by topic (see `chorus_runtime::kafka::group`).
    groups: Mutex<Vec<(String, Arc<GroupHealth>)>>,
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

    /// The liveness record of the worker reading `topic`.
    pub fn group(&self, topic: &str) -> Arc<GroupHealth> {
        let health = Arc::new(GroupHealth::default());
        self.groups.lock().push((topic.to_owned(), health.clone()));
        health
    }

    /// 200 while serving (`ok`, or `degraded` while a step is retried or a worker holds no
    /// partition while its group lags: jobs wait, none is lost), 503 while shutting down.
    pub fn health(&self) -> (bool, serde_json::Value) {
        let trouble = self.trouble.lock().clone();
        let kafka = self.kafka_up.load(Ordering::Relaxed);
        let groups: serde_json::Map<String, serde_json::Value> = self
            .groups
            .lock()
            .iter()
            .map(|(topic, g)| {
                let v = json!({"lag": g.lag(), "starved": g.starved(), "rejoins": g.rejoins()});
                (topic.clone(), v)
            })
            .collect();
        let starved = groups.values().any(|g| g["starved"] == true);
        let status = if self.stopping.load(Ordering::Relaxed) {
            "shutting_down"
        } else if kafka && trouble.is_none() && !starved {
            "ok"
        } else {
            "degraded"
        };
        let mut body = json!({ "status": status, "kafka": { "up": kafka }, "groups": groups });
        if let Some(t) = trouble {
            body["retrying"] = json!(t);
        }
        (status != "shutting_down", body)
    }
}

impl chorus_runtime::server::Probe for Status {
    fn health(&self) -> (bool, serde_json::Value) {
        Status::health(self)
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}
