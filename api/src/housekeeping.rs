//! Pruning what only grows otherwise: send idempotency keys past `outbox.send_key_ttl_secs`
//! and refresh tokens past their expiry. In small batches, so no prune holds locks for long
//! or fills the WAL at once; every replica may run it (a delete is idempotent).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::state::AppState;

const EVERY: Duration = Duration::from_secs(60);
const BATCH: i64 = 1000;
/// Refresh tokens are kept a day past expiry, so a late reuse is still told apart in logs.
const REFRESH_KEPT_SECS: f64 = 24.0 * 3600.0;

/// One pass: returns how many send keys and refresh tokens it deleted.
pub async fn prune(s: &AppState) -> sqlx::Result<(u64, u64)> {
    let keys_ttl = s.config.outbox.send_key_ttl_secs as f64;
    let keys = drain(
        s,
        "DELETE FROM send_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM send_keys
         WHERE created_at < now() - make_interval(secs => $1) LIMIT $2))",
        keys_ttl,
    )
    .await?;
    let tokens = drain(
        s,
        "DELETE FROM refresh_tokens WHERE id = ANY(ARRAY(SELECT id FROM refresh_tokens
         WHERE expires_at < now() - make_interval(secs => $1) LIMIT $2))",
        REFRESH_KEPT_SECS,
    )
    .await?;
    Ok((keys, tokens))
}

async fn drain(s: &AppState, sql: &str, age_secs: f64) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let n = sqlx::query(sql)
            .bind(age_secs)
            .bind(BATCH)
            .execute(&s.db)
            .await?
            .rows_affected();
        total += n;
        if n < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Prunes every minute until `shutdown`.
pub async fn run(s: AppState, shutdown: CancellationToken) {
    loop {
        match prune(&s).await {
            Ok((0, 0)) => {}
            Ok((keys, tokens)) => {
                tracing::info!(keys, tokens, "pruned send keys and refresh tokens")
            }
            Err(e) => tracing::warn!(error = %e, "pruning send keys and refresh tokens"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
