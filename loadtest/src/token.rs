//! Connection JWTs, one per connection, minted from the hub's HMAC secret.

use serde::Serialize;

#[derive(Serialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// A day is longer than any run, so no connection needs a refresh mid-run.
const TTL_SECS: u64 = 24 * 3600;

/// An HS256 token for user `lt-<index>`.
pub fn mint(secret: &str, index: usize) -> String {
    let claims = Claims {
        sub: format!("lt-{index}"),
        exp: crate::payload::now_micros() / 1_000_000 + TTL_SECS,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("invariant: HS256 encoding of plain claims cannot fail")
}
