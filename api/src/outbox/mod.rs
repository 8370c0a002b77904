//! The transactional outbox: a state change and its events commit together, and a relay
//! publishes them to Kafka afterwards.
//!
//! - [`record`] runs inside the change's transaction: a rolled-back change leaves no event,
//!   a committed one always has its rows.
//! - [`run_relay`] publishes rows in id order and deletes them only after the broker
//!   acknowledged every one (acks=all): a relay killed between commit and publish, or between
//!   publish and delete, publishes them (again) when it comes back. At least once, in order.
//! - Two relays (two API replicas) never publish side by side: each round takes a
//!   transaction-scoped advisory lock first and the rows `FOR UPDATE SKIP LOCKED`, so the
//!   second waits for the next round instead of skipping ahead (which would reorder).
//! - A round holds its transaction while it waits for the broker, so the relay runs on a
//!   connection of its own, outside the pool: a slow broker never takes a pooled connection
//!   from login, sends or the subscribe proxy.
//! - A send's rows ([`insert_due`]) wait until `not_before`: the send produces them itself
//!   first, and the relay only takes what a send that died or timed out left behind.
//! - [`reactor`] consumes the state events the relay published: cache invalidation and hub
//!   unsubscribes, at least once.

pub mod reactor;
pub mod reactor_status;

use std::time::Duration;

use chorus_protocol::event::{ChatEvent, EventBody};
use chorus_protocol::state::{StateBody, StateEvent, VERSION};
use sqlx::{Connection, PgConnection, Row};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// The advisory lock that makes one relay at a time publish (any constant unique to Chorus).
const RELAY_LOCK: i64 = 0x6368_6f72_7573; // "chorus"

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes the events of one state change: the state event for the state topic, and (for a
/// chat that live clients may be watching) a `chat.updated` event into the chat's own stream.
pub async fn record(
    tx: &mut PgConnection,
    s: &AppState,
    chat_id: i64,
    body: StateBody,
) -> sqlx::Result<()> {
    let chat = chat_id.to_string();
    let event_id = s.ulid();
    let ts = now_ms();
    let live = match &body {
        StateBody::ChatCreated { .. } => None,
        StateBody::ChatUpdated { title } => Some(("chat.updated", Some(title.clone()), None)),
        StateBody::ChatDeleted { .. } => Some(("chat.deleted", None, None)),
        StateBody::MemberAdded { user_id, .. } => {
            Some(("member.added", None, Some(user_id.clone())))
        }
        StateBody::MemberRemoved { user_id } => {
            Some(("member.removed", None, Some(user_id.clone())))
        }
    };
    let state = StateEvent {
        v: VERSION,
        event_id: event_id.clone(),
        chat_id: chat.clone(),
        ts,
        body,
    };
    insert(tx, &s.config.kafka.state_topic, &chat, state.encode()).await?;
    if let Some((change, title, user_id)) = live {
        let event = ChatEvent {
            v: VERSION,
            // Its own id: the hub deduplicates a chat's stream by event id.
            event_id: s.ulid(),
            chat_id: chat.clone(),
            ts,
            body: EventBody::ChatUpdated {
                change: change.into(),
                title,
                user_id,
            },
        };
        insert(tx, &s.config.kafka.messages_topic, &chat, event.encode()).await?;
    }
    Ok(())
}

/// Writes one row for any topic, in the caller's transaction, due at once.
pub async fn insert(
    tx: &mut PgConnection,
    topic: &str,
    key: &str,
    payload: Vec<u8>,
) -> sqlx::Result<()> {
    insert_due(tx, topic, key, payload, Duration::ZERO)
        .await
        .map(drop)
}

/// Writes a send's row, due for the relay only after `after` (see the module notes);
/// returns its id.
pub async fn insert_due(
    tx: &mut PgConnection,
    topic: &str,
    key: &str,
    payload: Vec<u8>,
    after: Duration,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO outbox (topic, key, payload, not_before)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING id",
    )
    .bind(topic)
    .bind(key)
    .bind(payload)
    .bind(after.as_secs_f64())
    .fetch_one(tx)
    .await
}

/// After a send's own produce was acknowledged: its row goes, and its jobs (which must not
/// reach their workers before the message exists) become due at once.
pub async fn sent_directly(db: &sqlx::PgPool, row: i64, jobs: &[i64]) -> sqlx::Result<()> {
    sqlx::query(
        "WITH gone AS (DELETE FROM outbox WHERE id = $1)
         UPDATE outbox SET not_before = now() WHERE id = ANY($2)",
    )
    .bind(row)
    .bind(jobs)
    .execute(db)
    .await
    .map(drop)
}

/// A connection of the relay's own, outside the pool.
pub async fn relay_connection(s: &AppState) -> sqlx::Result<PgConnection> {
    PgConnection::connect_with(&s.db.connect_options()).await
}

/// One relay round on a connection of its own: publishes up to `outbox.batch` due rows and
/// deletes them. `Ok(0)` when there was nothing to do (or another relay holds the lock).
pub async fn relay_once(s: &AppState) -> anyhow::Result<usize> {
    let mut conn = relay_connection(s).await?;
    let n = relay_once_on(s, &mut conn).await;
    let _ = conn.close().await;
    n
}

/// [`relay_once`] on the given connection.
pub async fn relay_once_on(s: &AppState, conn: &mut PgConnection) -> anyhow::Result<usize> {
    let mut tx = conn.begin().await?;
    let ids = publish_head(s, &mut tx).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    crate::failpoint::crash_point(s, "relay.after_publish");
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    s.metrics.outbox_published.inc_by(ids.len() as u64);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&s.db)
        .await?;
    s.metrics.outbox_pending.set(left);
    Ok(ids.len())
}

/// Inside `tx`: takes the relay lock, then publishes the oldest rows and waits until the
/// broker acknowledged every one. Returns their ids (none when another relay holds the lock
/// or nothing waits); they leave the outbox only when the caller deletes them and commits, so
/// a relay that dies before that publishes them again.
pub async fn publish_head(s: &AppState, tx: &mut PgConnection) -> anyhow::Result<Vec<i64>> {
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RELAY_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT id, topic, key, payload FROM outbox WHERE not_before <= now()
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(s.config.outbox.batch)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        s.metrics.outbox_pending.set(0);
        return Ok(Vec::new());
    }
    let timeout = Duration::from_millis(s.config.kafka.send_timeout_ms);
    let mut ids = Vec::with_capacity(rows.len());
    let mut sends = Vec::with_capacity(rows.len());
    for row in &rows {
        ids.push(row.try_get::<i64, _>("id")?);
        let topic: String = row.try_get("topic")?;
        let key: String = row.try_get("key")?;
        let payload: Vec<u8> = row.try_get("payload")?;
        let producer = s.producer.clone();
        // All in flight at once: the idempotent producer keeps each partition in order.
        sends.push(
            async move { crate::kafka::send(&producer, &topic, &key, &payload, timeout).await },
        );
    }
    for result in futures_util::future::join_all(sends).await {
        // One failure fails the round: the caller's rollback leaves every row for the next.
        result.map_err(|e| anyhow::anyhow!("publishing the outbox: {e}"))?;
    }
    Ok(ids)
}

/// Publishes the outbox until `shutdown`: at once when woken by a commit, else every
/// `outbox.poll_ms`; failures back off up to 5 s and are retried forever.
pub async fn run_relay(s: AppState, shutdown: CancellationToken) {
    let poll = Duration::from_millis(s.config.outbox.poll_ms);
    let mut failures = 0u32;
    let mut conn: Option<PgConnection> = None;
    loop {
        let round = async {
            let c = match &mut conn {
                Some(c) => c,
                None => conn.insert(relay_connection(&s).await?),
            };
            let n = relay_once_on(&s, c).await;
            if n.is_err() {
                // A broken connection is replaced; a healthy one costs a reconnect, no more.
                conn = None;
            }
            n
        };
        let wait = match round.await {
            Ok(n) if n > 0 => {
                failures = 0;
                continue;
            }
            Ok(_) => {
                failures = 0;
                poll
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %format!("{e:#}"), failures, "outbox relay round failed; retrying");
                Duration::from_millis((100u64 << failures.min(6)).min(5_000))
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = s.outbox_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
