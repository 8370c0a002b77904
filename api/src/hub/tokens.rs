//! Tokens for the hub, signed with the hub's `client.token.hmac_secret_key` and carrying
//! Centrifugo's claims: a connection token (`sub` = the user id) and subscription tokens
//! (`sub`, `channel` = `chat:<id>`), the latter for members only.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::auth::access::{SignedIn, User};
use crate::auth::refresh;
use crate::chats::membership;
use crate::error::ApiError;
use crate::extract::ChatId;
use crate::state::AppState;

fn sign(s: &AppState, claims: &Value) -> Result<String, ApiError> {
    let secret = &s.config.hub.token_hmac_secret;
    if secret.is_empty() {
        return Err(ApiError::Unavailable(
            "hub tokens are not configured (hub.token_hmac_secret)".into(),
        ));
    }
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("invariant: HS256 encoding of plain claims cannot fail"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `POST /hub/connection-token`: what the SDK's `getToken` fetches. Only for a live sign-in
/// session: a signed-out session's access token, still unexpired, gets no hub token. `iat`
/// lets the hub refuse it once the session ends (`hub::signout`).
pub async fn connection(
    State(s): State<AppState>,
    SignedIn(me): SignedIn,
) -> Result<Response, ApiError> {
    if !refresh::live(&s.db, &me.sid).await? {
        return Err(ApiError::Unauthorized("session ended; sign in again"));
    }
    let iat = now();
    let exp = iat + s.config.hub.connection_token_ttl_secs;
    let token = sign(
        &s,
        &json!({"sub": me.user.to_string(), "iat": iat, "exp": exp}),
    )?;
    Ok(Json(json!({"token": token, "expires_at": exp})).into_response())
}

/// `POST /chats/{id}/subscription-token`: only with `hub.subscription_tokens` on, for hubs
/// that check subscriptions by token instead of the subscribe proxy.
///
/// A token is checked by the hub alone, so it outlives a removal until it expires: with the
/// subscribe proxy (the default) none is issued, and every subscribe, recovery and reconnect
/// asks PostgreSQL through the proxy. When tokens are on, they are short
/// (`hub.subscription_token_ttl_secs`, 60 s by default) and each refresh asks here again.
pub async fn subscription(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
) -> Result<Response, ApiError> {
    if !s.config.hub.subscription_tokens {
        return Err(ApiError::Forbidden(
            "subscription tokens are off: chat subscriptions are authorized by the subscribe proxy",
        ));
    }
    membership::require(&s, chat, me).await?;
    let exp = now() + s.config.hub.subscription_token_ttl_secs;
    let channel = chorus_protocol::event::chat_channel(chat);
    let token = sign(
        &s,
        &json!({"sub": me.to_string(), "channel": channel, "exp": exp}),
    )?;
    Ok(Json(json!({"token": token, "channel": channel, "expires_at": exp})).into_response())
}
