//! What the API does for the hub: connection (and, opted in, subscription) tokens
//! ([`tokens`]), the subscribe proxy the hub asks before any chat subscription and the
//! publish proxy for typing indicators ([`proxy`]), the connect and refresh proxies with which
//! a browser connects on its session cookie ([`session`]),
//! the hub's server API, which the API calls ([`api`]), a sign-in session's end on the hub
//! ([`signout`]), and the hub's public WebSocket URL for browsers (`GET /config`, [`public`]).

pub mod api;
pub mod proxy;
pub mod public;
pub mod session;
pub mod signout;
pub mod tokens;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/config", get(public::client_config))
        .route("/hub/connection-token", post(tokens::connection))
        .route("/hub/subscribe", post(proxy::subscribe))
        .route("/hub/publish", post(proxy::publish))
        .route("/hub/connect", post(session::connect))
        .route("/hub/refresh", post(session::refresh))
        .route("/chats/{id}/subscription-token", post(tokens::subscription))
}
