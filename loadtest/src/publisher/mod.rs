//! Publishers: how the harness gets a publication into the server under test.
//!
//! The HTTP ones go through the server's own API; [`kafka`] produces records the hub's
//! Kafka consumer delivers. A publisher is called for one channel at a time and must not reorder calls.

pub mod centrifugo;
pub mod kafka;
pub mod pusher;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("server answered {status}: {body}")]
    Rejected { status: u16, body: String },
}

#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes `data` (a JSON object's text) to `channel`; returns once the server accepted it.
    async fn publish(&self, channel: &str, data: &str) -> Result<(), PublishError>;
}

/// A short excerpt of a response body for an error message.
fn excerpt(body: &str) -> String {
    body.chars().take(200).collect()
}
