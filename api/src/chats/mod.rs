//! Chats and their members: create, list, get, rename, delete; add, remove, change role,
//! leave ([`handlers`]); who is in a chat, through the Redis cache-aside layer
//! ([`membership`]); removed members cut off on the hub before a removal answers ([`cutoff`]).

pub mod cutoff;
pub mod handlers;
pub mod membership;

use axum::routing::{delete, get, post};
use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/chats", post(handlers::create).get(handlers::list))
        .route(
            "/chats/{id}",
            get(handlers::get)
                .patch(handlers::rename)
                .delete(handlers::remove),
        )
        .route("/chats/{id}/members", post(handlers::add_member))
        .route(
            "/chats/{id}/members/{user_id}",
            delete(handlers::remove_member).patch(handlers::set_role),
        )
        .route("/chats/{id}/leave", post(handlers::leave))
}
