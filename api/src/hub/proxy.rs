//! `POST /hub/subscribe`: the hub's subscribe proxy (Centrifugo v6 `channel.proxy.subscribe`).
//!
//! The hub sends Centrifugo's request (`{"client","user","channel",...}`); the answer is
//! Centrifugo's: `{"result": {}}` to allow, `{"error": {"code", "message"}}` to refuse. Only
//! members of chat `<id>` may subscribe to `chat:<id>`. Membership goes through the cache, so
//! a removed member is refused as soon as the removal committed.
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
use crate::chats::membership;
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

pub async fn subscribe(
    State(s): State<AppState>,
    headers: HeaderMap,
    Body(r): Body<ProxyRequest>,
) -> Result<Response, ApiError> {
    // Config validation refuses an empty key, so there is always one to present.
    let given = headers
        .get(PROXY_KEY_HEADER)
        .map_or(&b""[..], |v| v.as_bytes());
    if !chorus_protocol::secret::keys_match(given, s.config.hub.proxy_key.as_bytes()) {
        return Err(ApiError::Unauthorized("missing or wrong proxy key"));
    }
    let Some(chat) =
        chorus_protocol::event::chat_id_of(&r.channel).and_then(|c| c.parse::<i64>().ok())
    else {
        return Ok(refuse());
    };
    let Ok(user) = r.user.parse::<i64>() else {
        // Anonymous or not one of ours.
        return Ok(refuse());
    };
    match membership::role(&s, chat, user).await? {
        Some(role) => {
            Ok(Json(json!({"result": {"info": {"role": role.as_str()}}})).into_response())
        }
        None => Ok(refuse()),
    }
}
