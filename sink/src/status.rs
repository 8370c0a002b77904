//! What `/health` reports: whether Kafka and DynamoDB answer, the lag, what is held.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::json;

use crate::metrics::Metrics;

pub struct Status {
    pub metrics: Arc<Metrics>,
    /// Whether this member holds partitions while its group lags (see `group`).
    pub group: Arc<chorus_runtime::kafka::group::GroupHealth>,
    /// The table exists and the consumer runs.
    started: AtomicBool,
    stopping: AtomicBool,
    kafka_up: AtomicBool,
    dynamodb_up: AtomicBool,
    dynamodb_error: Mutex<Option<String>>,
    lag: AtomicI64,
    /// Records in the flush being written, and in the channel to the writer.
    in_flush: AtomicUsize,
    queued: AtomicUsize,
}

impl Status {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Status {
            metrics,
            group: Default::default(),
            started: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            kafka_up: AtomicBool::new(false),
            dynamodb_up: AtomicBool::new(false),
            dynamodb_error: Mutex::new(None),
            lag: AtomicI64::new(0),
            in_flush: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
        }
    }

    pub fn started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn kafka(&self, up: bool) {
        self.kafka_up.store(up, Ordering::Relaxed);
        self.metrics.kafka_up.set(i64::from(up));
    }

    pub fn dynamodb_ok(&self) {
        if !self.dynamodb_up.swap(true, Ordering::Relaxed) {
            tracing::info!("dynamodb answers");
        }
        self.metrics.dynamodb_up.set(1);
        *self.dynamodb_error.lock() = None;
    }

    pub fn dynamodb_down(&self, error: &str) {
        if self.dynamodb_up.swap(false, Ordering::Relaxed) {
            tracing::warn!(%error, "dynamodb unreachable; holding records and retrying");
        }
        self.metrics.dynamodb_up.set(0);
        *self.dynamodb_error.lock() = Some(error.to_owned());
    }

    /// The writer's side of `chorus_sink_pending_records`.
    pub fn set_in_flush(&self, n: usize) {
        self.in_flush.store(n, Ordering::Relaxed);
        self.update_pending();
    }

    /// The reader's side: records waiting in the channel.
    pub fn set_queued(&self, n: usize) {
        self.queued.store(n, Ordering::Relaxed);
        self.update_pending();
    }

    fn update_pending(&self) {
        let n = self.in_flush.load(Ordering::Relaxed) + self.queued.load(Ordering::Relaxed);
        self.metrics.pending_records.set(n as i64);
    }

    pub fn set_lag(&self, lag: i64) {
        self.lag.store(lag, Ordering::Relaxed);
    }

    /// What the group watch saw: the group's lag by partition, or that Kafka did not answer.
    pub fn lag_seen(&self, looked: Result<&[(i32, i64)], &rdkafka::error::KafkaError>) {
        match looked {
            Ok(parts) => {
                self.kafka(true);
                for (partition, lag) in parts {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[&partition.to_string()])
                        .set(*lag);
                }
                self.set_lag(parts.iter().map(|(_, l)| l).sum());
            }
            Err(e) => {
                tracing::debug!(error = %e, "lag: kafka unreachable");
                self.kafka(false);
            }
        }
    }

    /// The `/health` body and whether the sink is serving: `ok`; `degraded` while Kafka or
    /// DynamoDB does not answer (records wait, nothing is lost) or while this sink holds no
    /// partition as its group lags; `starting` until the table is there; `shutting_down`.
    pub fn health(&self) -> (bool, serde_json::Value) {
        let kafka = self.kafka_up.load(Ordering::Relaxed);
        let dynamodb = self.dynamodb_up.load(Ordering::Relaxed);
        let status = if self.stopping.load(Ordering::Relaxed) {
            "shutting_down"
        } else if !self.started.load(Ordering::Relaxed) {
            "starting"
        } else if kafka && dynamodb && !self.group.starved() {
            "ok"
        } else {
            "degraded"
        };
        let mut dynamo = json!({ "up": dynamodb });
        if let Some(e) = self.dynamodb_error.lock().as_ref() {
            dynamo["error"] = json!(e);
        }
        let body = json!({
            "status": status,
            "kafka": {
                "up": kafka,
                "lag": self.lag.load(Ordering::Relaxed),
                "starved": self.group.starved(),
                "rejoins": self.group.rejoins(),
            },
            "dynamodb": dynamo,
            "pending": self.metrics.pending_records.get(),
        });
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
