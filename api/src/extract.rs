//! Extractors for chat routes, so handlers start from what they need: the chat id of the path
//! ([`ChatId`]), or a caller who is a member of that chat ([`Member`]).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::auth::access::User;
use crate::chats::membership::{self, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// A chat id as it appears in a path: a positive integer. Anything else names no chat: 404.
pub fn chat_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or(ApiError::NotFound)
}

/// The `{id}` of a `/chats/{id}/...` route.
pub struct ChatId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for ChatId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let raw = params.get("id").ok_or(ApiError::NotFound)?;
        chat_id(raw).map(ChatId)
    }
}

/// The signed-in caller, a member of the chat in the path: 401 without a valid access token,
/// and 404 both for a chat that does not exist and for one the caller is not in, so a
/// stranger learns nothing.
pub struct Member {
    pub chat: i64,
    pub user: i64,
    pub role: Role,
}

impl FromRequestParts<AppState> for Member {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let User(user) = User::from_request_parts(parts, state).await?;
        let ChatId(chat) = ChatId::from_request_parts(parts, state).await?;
        let role = membership::require(state, chat, user).await?;
        Ok(Member { chat, user, role })
    }
}
