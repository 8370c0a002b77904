//! Connection tokens a backend has withdrawn before they expire: Centrifugo PRO's
//! `invalidate_user_tokens` (every token of a user issued before a time), shared by every node
//! through the engine. A signed-out session's hub token must stop connecting at once, not
//! when its `exp` comes; the user's other sessions fetch new tokens (their SDK is told the
//! token expired, code 109, and asks its `getToken` again).
//!
//! [`memory::MemoryRevoked`] serves a single node; [`redis::RedisRevoked`] serves many.

pub mod memory;
pub mod redis;

use async_trait::async_trait;

pub use memory::MemoryRevoked;
pub use redis::RedisRevoked;

#[derive(Debug, thiserror::Error)]
#[error("token invalidations unavailable: {0}")]
pub struct RevokedError(pub String);

#[async_trait]
pub trait Revoked: Send + Sync + 'static {
    /// Every token of `user` issued before `issued_before` (unix seconds) is refused from now
    /// on, until `expire_at` (unix seconds), after which no such token is valid anyway. A later
    /// call with an earlier time does not move the line back.
    async fn invalidate(
        &self,
        user: &str,
        issued_before: i64,
        expire_at: i64,
    ) -> Result<(), RevokedError>;

    /// The line for `user`: tokens issued before it are refused; `None` when there is none.
    async fn issued_before(&self, user: &str) -> Result<Option<i64>, RevokedError>;
}

/// Whether a token of `user` issued at `iat` is still good under the line `before`. A token
/// with no `iat` cannot show it was issued after the line, so any line refuses it.
pub fn still_valid(iat: Option<i64>, before: Option<i64>) -> bool {
    match (before, iat) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(line), Some(iat)) => iat >= line,
    }
}

#[cfg(test)]
mod tests {
    use super::still_valid;

    #[test]
    fn a_token_is_refused_only_below_the_line() {
        assert!(still_valid(None, None));
        assert!(still_valid(Some(5), None));
        assert!(
            !still_valid(None, Some(10)),
            "no iat: cannot prove it is newer"
        );
        assert!(!still_valid(Some(9), Some(10)));
        assert!(
            still_valid(Some(10), Some(10)),
            "issued in the second of the line"
        );
        assert!(still_valid(Some(11), Some(10)));
    }
}
