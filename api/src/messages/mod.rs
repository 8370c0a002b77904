//! Messages: send (produce to Kafka, the source of truth, through the outbox when the broker
//! is slow) and history (read from DynamoDB, where the sink stores what Kafka carried).

pub mod history;
pub mod send;

use axum::routing::post;
use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/chats/{id}/messages",
        post(send::send).get(history::history),
    )
}
