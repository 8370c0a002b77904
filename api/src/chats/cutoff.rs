//! Removed members lose the chat on the hub before their removal answers.
//!
//! A removal (a member removed, a member leaving, a chat deleted) commits in PostgreSQL, then
//! unsubscribes every removed user from every channel they held because of the chat
//! (`chorus_protocol::event::chat_channels`) on every hub node, through the hub's server API,
//! and only then answers. Nothing here waits for Kafka: a broker that is slow or stopped, or a
//! state consumer that holds no partition, delays no cut-off.
//!
//! The state event's consumer (`outbox::reactor`) unsubscribes again when it reads the
//! removal: that is the retry path, for a removal whose hub call failed here. A hub that
//! cannot be reached fails the request with 503, saying the removal is saved but not yet in
//! effect, never a silent 204 while the member still reads. A removed member who subscribes
//! again is refused by the subscribe proxy, which reads PostgreSQL (`hub::proxy`).

use crate::error::ApiError;
use crate::state::AppState;

/// Unsubscribes `users` from every channel of `chat` on the hub.
pub async fn cut_off(s: &AppState, chat: i64, users: &[i64]) -> Result<(), ApiError> {
    let users: Vec<String> = users.iter().map(i64::to_string).collect();
    s.hub
        .unsubscribe(&users, &chorus_protocol::event::chat_channels(chat))
        .await
        .map_err(|e| {
            tracing::warn!(chat, error = %format!("{e:#}"), "removal saved but not cut off on the hub; the state event retries");
            ApiError::Unavailable(
                "the removal is saved, but the hub did not confirm that the removed members were cut off; it is retried: ask again to check".into(),
            )
        })
}
