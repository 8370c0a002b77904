//! What the API does for the hub: connection (and, opted in, subscription) tokens
//! ([`tokens`]), the subscribe proxy the hub asks before any chat subscription ([`proxy`]),
//! and the hub's server API, which the API calls ([`api`]).

pub mod api;
pub mod proxy;
pub mod tokens;

use axum::routing::post;
use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/hub/connection-token", post(tokens::connection))
        .route("/hub/subscribe", post(proxy::subscribe))
        .route("/chats/{id}/subscription-token", post(tokens::subscription))
}
