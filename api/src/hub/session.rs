//! The hub's connect and refresh proxies (Centrifugo v6 `client.proxy.connect` and
//! `.refresh`): `POST /hub/connect` and `POST /hub/refresh`, so a browser connects with its
//! session cookie alone, no connection token.
//!
//! Login and refresh set `chorus_access`, the access token as an HttpOnly cookie scoped to
//! `/connection` (the hub's client endpoints; cookies ignore ports, so on one host the hub
//! gets it too). The hub passes the client's `Cookie` header on (`http_headers`, on connect
//! and on refresh, which carries the headers the connection opened with); `connect` answers
//! with the user the token names and its expiry, for a live sign-in session only (the token's
//! `sid`: a refresh family neither revoked nor expired). `refresh` runs when that expiry
//! comes, on the server side: while the very session the connection opened with lives, it is
//! extended by one access-token lifetime; once that session signed out (whatever other
//! sessions the user has) it is `expired` and the hub closes the connection.
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
use crate::auth::{access, refresh};
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
    let Ok(access) = access::verify_access(&s.config.jwt_secret, token) else {
        return Ok(unauthorized());
    };
    if !refresh::live(&s.db, &access.sid).await? {
        return Ok(unauthorized());
    }
    Ok(
        Json(json!({"result": {"user": access.user.to_string(), "expire_at": access.exp}}))
            .into_response(),
    )
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
    // The session the connection opened with, from the cookie it opened with (signed by us,
    // long expired by now): that session, not any of the user's, keeps it open.
    let opened_with = cookie(&headers, ACCESS_COOKIE)
        .and_then(|t| access::signed_access(&s.config.jwt_secret, t).ok())
        .filter(|a| a.user.to_string() == r.user);
    let live = match opened_with {
        Some(a) => refresh::live(&s.db, &a.sid).await?,
        None => false,
    };
    if !live {
        return Ok(Json(json!({"result": {"expired": true}})).into_response());
    }
    let expire_at = access::now() + s.config.access_ttl.as_secs();
    Ok(Json(json!({"result": {"expire_at": expire_at}})).into_response())
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
