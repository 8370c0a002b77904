//! The hub's connect and refresh proxies (Centrifugo v6 `client.proxy.connect` and
//! `.refresh`): `POST /hub/connect` and `POST /hub/refresh`, so a browser connects with its
//! session cookie alone, no connection token.
//!
//! Login and refresh set `chorus_access`, the access token as an HttpOnly cookie scoped to
//! `/connection` (the hub's client endpoints; cookies ignore ports, so on one host the hub
//! gets it too). The hub passes the client's `Cookie` header on (`http_headers`); `connect`
//! answers with the user the token names and its expiry. `refresh` runs when that expiry
//! comes, on the server side: a user with a live session (a refresh token not revoked or
//! expired) is extended by one access-token lifetime, one who logged out everywhere is
//! `expired` and the hub closes the connection.
//!
//! A request that cannot be decided (PostgreSQL down) is an HTTP error, which the hub turns
//! into a temporary error (connect) or a retry on the next tick (refresh): never a grant.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::proxy::check_key;
use crate::auth::access;
use crate::body::Body;
use crate::error::ApiError;
use crate::state::AppState;

/// The cookie carrying the access token to the hub.
pub const ACCESS_COOKIE: &str = "chorus_access";

/// The `Set-Cookie` value for an access token valid `ttl_secs`, or (with `None`) the one
/// that clears it.
pub fn access_cookie(token: Option<&str>, ttl_secs: u64) -> String {
    let (value, max_age) = token.map_or(("", 0), |t| (t, ttl_secs));
    format!("{ACCESS_COOKIE}={value}; HttpOnly; Secure; SameSite=Strict; Path=/connection; Max-Age={max_age}")
}

/// The value of the cookie `name` among the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// Centrifugo's connect proxy request; only its shape is checked (a request that is not
/// Centrifugo's is refused with 400).
#[derive(Deserialize)]
pub struct ConnectRequest {
    #[serde(rename = "client")]
    _client: String,
}

/// Refusal: a disconnect the SDK does not retry (4501, a custom code in Centrifugo's
/// non-reconnecting range). The web client logs in again, or refreshes, and reconnects.
fn unauthorized() -> Response {
    Json(json!({"disconnect": {"code": 4501, "reason": "unauthorized"}})).into_response()
}

pub async fn connect(
    State(s): State<AppState>,
    headers: HeaderMap,
    Body(_): Body<ConnectRequest>,
) -> Result<Response, ApiError> {
    check_key(&s, &headers)?;
    let Some(token) = cookie(&headers, ACCESS_COOKIE) else {
        return Ok(unauthorized());
    };
    let Ok((user, exp)) = access::verify_with_expiry(&s.config.jwt_secret, token) else {
        return Ok(unauthorized());
    };
    if !live_session(&s, user).await? {
        return Ok(unauthorized());
    }
    Ok(Json(json!({"result": {"user": user.to_string(), "expire_at": exp}})).into_response())
}

#[derive(Deserialize)]
pub struct RefreshRequest {
    user: String,
    #[serde(rename = "client")]
    _client: String,
}

pub async fn refresh(
    State(s): State<AppState>,
    headers: HeaderMap,
    Body(r): Body<RefreshRequest>,
) -> Result<Response, ApiError> {
    check_key(&s, &headers)?;
    let live = match r.user.parse::<i64>() {
        Ok(user) => live_session(&s, user).await?,
        Err(_) => false,
    };
    if !live {
        return Ok(Json(json!({"result": {"expired": true}})).into_response());
    }
    let expire_at = access::now() + s.config.access_ttl.as_secs();
    Ok(Json(json!({"result": {"expire_at": expire_at}})).into_response())
}

/// Whether the user still has a session: a refresh token neither revoked nor expired. Logout
/// revokes its token, so a user logged out everywhere has none.
async fn live_session(s: &AppState, user: i64) -> Result<bool, ApiError> {
    let live: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM refresh_tokens
                         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now())",
    )
    .bind(user)
    .fetch_one(&s.db)
    .await?;
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_access_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; chorus_access=tok.en.x; chorus_accessory=no"),
        );
        assert_eq!(cookie(&h, ACCESS_COOKIE), Some("tok.en.x"));
        assert_eq!(cookie(&h, "b"), None);
        assert!(access_cookie(None, 900).contains("chorus_access=; "));
        assert!(access_cookie(Some("t"), 900).ends_with("Path=/connection; Max-Age=900"));
    }
}
