//! Refresh tokens: opaque 256-bit random strings; only their SHA-256 is stored. Each login
//! starts a family; each refresh rotates the presented token into a new one of the family.
//!
//! - A rotated token presented again within `refresh_grace` rotates again (two tabs or a
//!   retried request refreshing at once both succeed).
//! - Presented after the grace window, it was stolen or replayed: the whole family is revoked,
//!   so the thief's copy and the owner's current token both stop working.
//! - The presented row is locked (`FOR UPDATE`), so two concurrent refreshes of one token are
//!   decided one after the other.

use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::error::ApiError;

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("invariant: the OS has randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    user_id: i64,
    family: &str,
    ttl: Duration,
) -> Result<String, ApiError> {
    let token = random_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (user_id, family, token_hash, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(user_id)
    .bind(family)
    .bind(digest(&token))
    .bind(ttl.as_secs_f64())
    .execute(&mut **tx)
    .await?;
    Ok(token)
}

/// A new family for a login: `(family, token)`. The family names the sign-in session.
pub async fn start(
    pool: &PgPool,
    user_id: i64,
    ttl: Duration,
) -> Result<(String, String), ApiError> {
    let family = random_token();
    let mut tx = pool.begin().await?;
    let token = insert(&mut tx, user_id, &family, ttl).await?;
    tx.commit().await?;
    Ok((family, token))
}

/// What presenting a refresh token did.
pub enum Rotation {
    /// A new token of the same family (session).
    Rotated {
        user_id: i64,
        family: String,
        token: String,
    },
    /// The token had been rotated before, past the grace window: stolen or replayed. The
    /// whole family was revoked; the session ends everywhere, the hub included.
    Reused { user_id: i64 },
}

/// Whether the sign-in session `family` is live: a token of it neither revoked nor expired.
/// Logout and reuse revoke a whole family, so a signed-out session has none.
pub async fn live(pool: &PgPool, family: &str) -> Result<bool, ApiError> {
    if family.is_empty() {
        return Ok(false);
    }
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM refresh_tokens
                         WHERE family = $1 AND revoked_at IS NULL AND expires_at > now())",
    )
    .bind(family)
    .fetch_one(pool)
    .await?)
}

/// Exchanges `token` for a new one of its family.
pub async fn rotate(
    pool: &PgPool,
    token: &str,
    ttl: Duration,
    grace: Duration,
) -> Result<Rotation, ApiError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT user_id, family, expires_at > now() AS live, revoked_at IS NOT NULL AS revoked,
                rotated_at IS NOT NULL AS rotated,
                COALESCE(rotated_at > now() - make_interval(secs => $2), false) AS in_grace
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(digest(token))
    .bind(grace.as_secs_f64())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::Unauthorized("invalid refresh token"))?;
    let user_id: i64 = row.try_get("user_id")?;
    let family: String = row.try_get("family")?;
    if row.try_get::<bool, _>("revoked")? {
        return Err(ApiError::Unauthorized("refresh token revoked"));
    }
    if !row.try_get::<bool, _>("live")? {
        return Err(ApiError::Unauthorized("refresh token expired"));
    }
    if row.try_get::<bool, _>("rotated")? && !row.try_get::<bool, _>("in_grace")? {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL",
        )
        .bind(&family)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::warn!(
            user_id,
            "refresh token reused after rotation; family revoked"
        );
        return Ok(Rotation::Reused { user_id });
    }
    sqlx::query(
        "UPDATE refresh_tokens SET rotated_at = COALESCE(rotated_at, now()) WHERE token_hash = $1",
    )
    .bind(digest(token))
    .execute(&mut *tx)
    .await?;
    let next = insert(&mut tx, user_id, &family, ttl).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated {
        user_id,
        family,
        token: next,
    })
}

/// Revokes `token`'s whole family (logout); returns the family's user, also when it was
/// revoked already (a logout asked again still ends the hub's side), and `None` for an
/// unknown token, which is not an error.
pub async fn revoke(pool: &PgPool, token: &str) -> Result<Option<i64>, ApiError> {
    let user: Option<i64> =
        sqlx::query_scalar("SELECT user_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(digest(token))
            .fetch_optional(pool)
            .await?;
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE revoked_at IS NULL
           AND family = (SELECT family FROM refresh_tokens WHERE token_hash = $1)",
    )
    .bind(digest(token))
    .execute(pool)
    .await?;
    Ok(user)
}
