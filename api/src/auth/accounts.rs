//! Accounts: register, login, refresh, logout, `GET /me`.
//!
//! Apps read both tokens from the JSON body and send the access token as a bearer header.
//! Browsers also get the refresh token in an HttpOnly, Secure, SameSite=Strict cookie scoped
//! to `/auth`, which `/auth/refresh` and `/auth/logout` read when the body has none, and the
//! access token in one scoped to `/connection`, with which the hub's connect proxy lets the
//! browser connect ([`crate::hub::session`]).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sqlx::Row;

use super::{password, refresh};
use crate::auth::access::{self, User};
use crate::body::{Body, Params};
use crate::error::ApiError;
use crate::hub::session::{access_cookie, cookie};
use crate::ratelimit::ClientAddr;
use crate::state::AppState;

pub const REFRESH_COOKIE: &str = "chorus_refresh";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    username: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    username: String,
}

fn check_username(u: &str) -> Result<(), ApiError> {
    let ok = (3..=32).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::Validation(
            "username: 3 to 32 of a-z, 0-9 and _".into(),
        ))
    }
}

fn check_password(p: &str) -> Result<(), ApiError> {
    if (8..=128).contains(&p.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::Validation("password: 8 to 128 characters".into()))
    }
}

pub async fn register(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Body(r): Body<Register>,
) -> Result<Response, ApiError> {
    s.limits.register.check(&addr).map_err(|wait| {
        s.metrics
            .rate_limited
            .with_label_values(&["register"])
            .inc();
        ApiError::RateLimited(wait)
    })?;
    check_username(&r.username)?;
    check_password(&r.password)?;
    let display_name = crate::text::line(r.display_name.as_deref().unwrap_or(&r.username), 64)
        .ok_or_else(|| {
            ApiError::Validation("display_name: 1 to 64 characters, no control characters".into())
        })?;
    let hash = password::hash(r.password).await?;
    let inserted = sqlx::query(
        "INSERT INTO users (username, display_name, password_hash) VALUES ($1, $2, $3)
         ON CONFLICT (username) DO NOTHING RETURNING id",
    )
    .bind(&r.username)
    .bind(&display_name)
    .bind(hash)
    .fetch_optional(&s.db)
    .await?;
    let Some(row) = inserted else {
        return Err(ApiError::Conflict("username taken"));
    };
    let id: i64 = row.try_get("id")?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id.to_string(), "username": r.username, "display_name": display_name})),
    )
        .into_response())
}

/// A body and a cookie carrying a fresh token pair.
fn tokens(s: &AppState, user_id: i64, sid: &str, refresh_token: String) -> Response {
    let access = access::issue(&s.config.jwt_secret, user_id, sid, s.config.access_ttl);
    let cookie = format!(
        "{REFRESH_COOKIE}={refresh_token}; HttpOnly; Secure; SameSite=Strict; Path=/auth; Max-Age={}",
        s.config.refresh_ttl.as_secs()
    );
    let mut response = Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": s.config.access_ttl.as_secs(),
        "refresh_token": refresh_token,
    }))
    .into_response();
    let access_cookie = access_cookie(Some(&access), s.config.access_ttl.as_secs());
    for c in [cookie, access_cookie] {
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_str(&c).expect("invariant: base64url and ASCII attributes"),
        );
    }
    response
}

pub async fn login(State(s): State<AppState>, Body(l): Body<Login>) -> Result<Response, ApiError> {
    // Per username: guessing one account's password is slowed whatever address it comes from.
    s.limits.login.check(&l.username).map_err(|wait| {
        s.metrics.rate_limited.with_label_values(&["login"]).inc();
        ApiError::RateLimited(wait)
    })?;
    let row = sqlx::query("SELECT id, password_hash FROM users WHERE username = $1")
        .bind(&l.username)
        .fetch_optional(&s.db)
        .await?;
    // The same answer for an unknown user and a wrong password.
    let refused = ApiError::Unauthorized("wrong username or password");
    let Some(row) = row else {
        return Err(refused);
    };
    if !password::verify(l.password, row.try_get("password_hash")?).await? {
        return Err(refused);
    }
    let id: i64 = row.try_get("id")?;
    let (family, token) = refresh::start(&s.db, id, s.config.refresh_ttl).await?;
    Ok(tokens(&s, id, &family, token))
}

/// The refresh token from the body, else from the cookie.
fn presented(headers: &HeaderMap, body: Option<RefreshBody>) -> Result<String, ApiError> {
    if let Some(t) = body.and_then(|b| b.refresh_token) {
        return Ok(t);
    }
    cookie(headers, REFRESH_COOKIE)
        .map(str::to_owned)
        .ok_or(ApiError::Unauthorized("missing refresh token"))
}

/// An optional JSON body: empty is fine (the cookie carries the token).
fn optional_body(bytes: axum::body::Bytes) -> Result<Option<RefreshBody>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::Validation(format!("body: {e}")))
}

pub async fn refresh(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    s.limits.refresh.check(&addr).map_err(|wait| {
        s.metrics.rate_limited.with_label_values(&["refresh"]).inc();
        ApiError::RateLimited(wait)
    })?;
    let token = presented(&headers, optional_body(bytes)?)?;
    match refresh::rotate(&s.db, &token, s.config.refresh_ttl, s.config.refresh_grace).await? {
        refresh::Rotation::Rotated {
            user_id,
            family,
            token,
        } => Ok(tokens(&s, user_id, &family, token)),
        refresh::Rotation::Reused { user_id } => {
            // Whoever holds the family's tokens, the thief included, loses the hub as well.
            crate::hub::signout::end_hub_access(&s, user_id).await?;
            Err(ApiError::Unauthorized(
                "refresh token reused; sign in again",
            ))
        }
    }
}

pub async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let token = presented(&headers, optional_body(bytes)?)?;
    if let Some(user) = refresh::revoke(&s.db, &token).await? {
        crate::hub::signout::end_hub_access(&s, user).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let cleared = [
        "chorus_refresh=; HttpOnly; Secure; SameSite=Strict; Path=/auth; Max-Age=0".to_owned(),
        access_cookie(None, 0),
    ];
    for c in cleared {
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_str(&c).expect("invariant: ASCII attributes"),
        );
    }
    Ok(response)
}

pub async fn me(State(s): State<AppState>, User(id): User) -> Result<Response, ApiError> {
    let row = sqlx::query("SELECT username, display_name FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&s.db)
        .await?
        .ok_or(ApiError::Unauthorized("user no longer exists"))?;
    let username: String = row.try_get("username")?;
    let display_name: String = row.try_get("display_name")?;
    Ok(
        Json(json!({"id": id.to_string(), "username": username, "display_name": display_name}))
            .into_response(),
    )
}

/// `GET /users?username=<name>`: a user by username, so a client can add them to a chat by
/// the name people know. Signed-in callers only; 404 when there is no such user.
pub async fn lookup(
    State(s): State<AppState>,
    User(_): User,
    Params(q): Params<Lookup>,
) -> Result<Response, ApiError> {
    check_username(&q.username)?;
    let row = sqlx::query("SELECT id, display_name FROM users WHERE username = $1")
        .bind(&q.username)
        .fetch_optional(&s.db)
        .await?
        .ok_or(ApiError::NotFound)?;
    let id: i64 = row.try_get("id")?;
    let display_name: String = row.try_get("display_name")?;
    Ok(
        Json(json!({"id": id.to_string(), "username": q.username, "display_name": display_name}))
            .into_response(),
    )
}
