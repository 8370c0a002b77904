//! Access tokens: short-lived HS256 JWTs naming the user; verified on every request that
//! needs a user, with no database round trip.

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
}

/// Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn issue(secret: &str, user_id: i64, ttl: Duration) -> String {
    let iat = now();
    let claims = Claims {
        sub: user_id.to_string(),
        iat,
        exp: iat + ttl.as_secs(),
        typ: "access".into(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("invariant: HS256 encoding of plain claims cannot fail")
}

/// The user id in a valid access token.
pub fn verify(secret: &str, token: &str) -> Result<i64, ApiError> {
    verify_with_expiry(secret, token).map(|(user, _)| user)
}

/// The user id in a valid access token, and when the token expires (Unix seconds).
pub fn verify_with_expiry(secret: &str, token: &str) -> Result<(i64, i64), ApiError> {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 0;
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
    Ok((user, data.claims.exp as i64))
}

/// The caller, from `Authorization: Bearer <access token>`.
pub struct User(pub i64);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        verify(&state.config.jwt_secret, token).map(User)
    }
}
