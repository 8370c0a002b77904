//! Publishers: how the harness gets a publication into the server under test.
//!
//! Each goes through the server's own HTTP API; a Kafka publisher joins them with the Kafka
//! consumer. A publisher is called for one channel at a time and must not reorder calls.

pub mod centrifugo;
pub mod pusher;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
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
