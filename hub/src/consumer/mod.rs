//! Asynchronous consumers: Kafka topics whose records the hub publishes to its channels.
//!
//! - [`record`]: what a record asks for (API command, publication data, chat event).
//! - [`kafka`]: the librdkafka consumer loop: order, offsets, replay, dead letters, retries.
//! - [`status`]: each consumer's health for `/health`.

pub mod kafka;
pub mod record;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use crate::node::Node;

/// Starts every enabled consumer of the node's config.
pub fn start(node: &Arc<Node>) -> anyhow::Result<Vec<kafka::Running>> {
    let mut running = Vec::new();
    for cfg in node.config.consumers.iter().filter(|c| c.enabled) {
        let status = status::Status::new(&cfg.name);
        node.consumers.add(status.clone());
        running.push(kafka::spawn(node.clone(), cfg.clone(), status)?);
        tracing::info!(consumer = %cfg.name, topics = ?cfg.kafka.topics, "kafka consumer started");
    }
    Ok(running)
}

/// Waits until every consumer finished its startup replay (or found its broker unreachable),
/// at most `limit`; returns whether they all did.
pub async fn wait_ready(running: &[kafka::Running], limit: Duration) -> bool {
    let all = async {
        for r in running {
            let mut ready = r.ready.clone();
            if ready.wait_for(|r| *r).await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(limit, all).await.is_ok()
}
