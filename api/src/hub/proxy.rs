//! The hub's channel proxies (Centrifugo v6 `channel.proxy.subscribe` and `.publish`):
//! `POST /hub/subscribe` and `POST /hub/publish`.
//!
//! The hub sends Centrifugo's request (`{"client","user","channel",...}`); the answer is
//! Centrifugo's: `{"result": {}}` to allow, `{"error": {"code", "message"}}` to refuse. Only
//! members of chat `<id>` may subscribe to `chat:<id>` or `typing:<id>`, and only they may
//! publish on `typing:<id>` (the typing indicator: clients publish there directly, through
//! the hub, nothing is stored). A subscribe is decided by PostgreSQL itself
//! (`membership::stored_role`), never by the cache, so a removed member is refused as soon as
//! the removal committed, whatever a reader cached around it; a typing publish, frequent and
//! harmless once the subscription is gone, goes through the cache.
//!
//! Anything this endpoint cannot decide (PostgreSQL down) is an HTTP error, which the hub
//! turns into a temporary error the SDK retries: never an allow.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::body::Body;
use crate::chats::membership::{self, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// The header the hub sends with `static_http_headers`.
pub const PROXY_KEY_HEADER: &str = "x-chorus-proxy-key";

#[derive(Deserialize)]
pub struct ProxyRequest {
    #[serde(default)]
    user: String,
    channel: String,
    /// Not used, but typed: a request that is not Centrifugo's shape is refused with 400.
    #[serde(default, rename = "client")]
    _client: String,
}

/// Centrifugo's "permission denied".
fn refuse() -> Response {
    Json(json!({"error": {"code": 103, "message": "permission denied"}})).into_response()
}

/// Every hub proxy request carries the proxy key (`static_http_headers`); config validation
/// refuses an empty key, so there is always one to present.
pub fn check_key(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(PROXY_KEY_HEADER)
        .map_or(&b""[..], |v| v.as_bytes());
    if !chorus_protocol::secret::keys_match(given, s.config.hub.proxy_key.as_bytes()) {
        return Err(ApiError::Unauthorized("missing or wrong proxy key"));
    }
    Ok(())
}

/// What the hub asks a proxy for.
#[derive(Clone, Copy)]
enum Asks {
    /// A subscription to `chat:<id>` or `typing:<id>`.
    Subscribe,
    /// A client publication, only ever on `typing:<id>`.
    PublishTyping,
}

/// The chat a channel belongs to and the user's role in it; `None`: refuse.
async fn member_role(s: &AppState, r: &ProxyRequest, asks: Asks) -> Result<Option<Role>, ApiError> {
    use chorus_protocol::event::{chat_id_of, typing_chat_id_of};
    let chat = match asks {
        Asks::PublishTyping => typing_chat_id_of(&r.channel),
        Asks::Subscribe => chat_id_of(&r.channel).or_else(|| typing_chat_id_of(&r.channel)),
    };
    let Some(chat) = chat.and_then(|c| c.parse::<i64>().ok()) else {
        return Ok(None);
    };
    let Ok(user) = r.user.parse::<i64>() else {
        // Anonymous or not one of ours.
        return Ok(None);
    };
    match asks {
        Asks::PublishTyping => membership::role(s, chat, user).await,
        Asks::Subscribe => membership::stored_role(s, chat, user).await,
    }
}

pub async fn subscribe(
    State(s): State<AppState>,
    headers: HeaderMap,
    Body(r): Body<ProxyRequest>,
) -> Result<Response, ApiError> {
    check_key(&s, &headers)?;
    match member_role(&s, &r, Asks::Subscribe).await? {
        Some(role) => {
            Ok(Json(json!({"result": {"info": {"role": role.as_str()}}})).into_response())
        }
        None => Ok(refuse()),
    }
}

/// The publish proxy: a member's typing indicator on `typing:<chat_id>`, passed on as sent;
/// anything else, and anyone else, refused. Chat messages never go this way: they are sent
/// through the API, stored in Kafka, and reach the hub from there.
pub async fn publish(
    State(s): State<AppState>,
    headers: HeaderMap,
    Body(r): Body<ProxyRequest>,
) -> Result<Response, ApiError> {
    check_key(&s, &headers)?;
    match member_role(&s, &r, Asks::PublishTyping).await? {
        Some(_) => Ok(Json(json!({"result": {}})).into_response()),
        None => Ok(refuse()),
    }
}
