//! Access tokens: short-lived HS256 JWTs naming the user and the sign-in session (`sid`, the
//! refresh-token family) they belong to; verified on every request that needs a user, with no
//! database round trip. What outlives a request (hub tokens, hub connections) also checks that
//! the session is still live ([`super::refresh::live`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    /// Always "access": a token of another kind signed with the same secret is refused.
    typ: String,
    /// The sign-in session: the refresh-token family. Empty in a token issued before sessions
    /// were named, which no session check accepts.
    #[serde(default)]
    sid: String,
}

/// What a valid access token says.
#[derive(Debug, Clone)]
pub struct Access {
    pub user: i64,
    /// The sign-in session (refresh-token family).
    pub sid: String,
    /// When the token expires (Unix seconds).
    pub exp: i64,
}

/// Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn issue(secret: &str, user_id: i64, sid: &str, ttl: Duration) -> String {
    let iat = now();
    let claims = Claims {
        sub: user_id.to_string(),
        iat,
        exp: iat + ttl.as_secs(),
        typ: "access".into(),
        sid: sid.to_owned(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("invariant: HS256 encoding of plain claims cannot fail")
}

/// What a valid, unexpired access token says.
pub fn verify_access(secret: &str, token: &str) -> Result<Access, ApiError> {
    decode(secret, token, true)
}

/// What an access token signed by us says, expired or not: the hub's refresh proxy holds the
/// cookie its connection opened with, long expired, and asks whether that session still lives.
pub fn signed_access(secret: &str, token: &str) -> Result<Access, ApiError> {
    decode(secret, token, false)
}

fn decode(secret: &str, token: &str, validate_exp: bool) -> Result<Access, ApiError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
    v.validate_exp = validate_exp;
    if !validate_exp {
        v.required_spec_claims.remove("exp");
    }
    let data =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::Unauthorized("access token expired")
                }
                _ => ApiError::Unauthorized("invalid access token"),
            })?;
    if data.claims.typ != "access" {
        return Err(ApiError::Unauthorized("invalid access token"));
    }
    let user = data
        .claims
        .sub
        .parse()
        .map_err(|_| ApiError::Unauthorized("invalid access token"))?;
    Ok(Access {
        user,
        sid: data.claims.sid,
        exp: data.claims.exp as i64,
    })
}

/// The caller, from `Authorization: Bearer <access token>`.
pub struct User(pub i64);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        SignedIn::from_request_parts(parts, state)
            .await
            .map(|SignedIn(a)| User(a.user))
    }
}

/// The caller and the sign-in session their bearer token belongs to.
pub struct SignedIn(pub Access);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        verify_access(&state.config.jwt_secret, token).map(SignedIn)
    }
}
