//! Sending a message: produced to Kafka, the source of truth, after its idempotency key and
//! outbox row committed; image and voice uploads send through here too.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chorus_protocol::event::{
    Attachment, AttachmentKind, Author, ChatEvent, EventBody, Message, VERSION,
};
use serde::Deserialize;
use serde_json::json;
use sqlx::Row;

use crate::auth::access::User;
use crate::body::Body;
use crate::chats::membership;
use crate::error::ApiError;
use crate::extract::ChatId;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    text: String,
}

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let k = v
        .to_str()
        .ok()
        .filter(|k| (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::Validation("Idempotency-Key: 1 to 128 visible ASCII characters".into())
        })?;
    Ok(Some(k.to_owned()))
}

/// The answer to a send: 201 once Kafka acknowledged it, 202 when it is committed but the
/// acknowledgement did not come in time (the relay publishes it; the id is final either way).
pub fn sent(chat: i64, message_id: &str, outcome: &Published) -> Response {
    let mut body = json!({"chat_id": chat.to_string(), "message_id": message_id});
    let status = match outcome {
        Published::New { ts } => {
            body["created_at"] = json!(ts);
            StatusCode::CREATED
        }
        Published::Queued { ts } => {
            body["created_at"] = json!(ts);
            body["status"] = json!("queued");
            StatusCode::ACCEPTED
        }
        Published::Replayed { message_id } => {
            body["message_id"] = json!(message_id);
            StatusCode::CREATED
        }
    };
    let mut r = (status, Json(body)).into_response();
    if matches!(outcome, Published::Replayed { .. }) {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

/// `POST /chats/{id}/messages`: see [`publish`] for what each answer promises.
pub async fn send(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
    headers: HeaderMap,
    Body(m): Body<Send>,
) -> Result<Response, ApiError> {
    s.limits.send.check(&me.to_string()).map_err(|wait| {
        s.metrics.rate_limited.with_label_values(&["send"]).inc();
        ApiError::RateLimited(wait)
    })?;
    let key = idempotency_key(&headers)?;
    let text = crate::text::body(&m.text, s.config.limits.max_text_chars).ok_or_else(|| {
        ApiError::Validation(format!(
            "text: 1 to {} characters, not blank, no control characters but newlines and tabs",
            s.config.limits.max_text_chars
        ))
    })?;
    membership::require(&s, chat, me).await?;
    let message_id = s.ulid();
    let outcome = publish(&s, chat, me, &message_id, Some(text), None, key).await?;
    Ok(sent(chat, &message_id, &outcome))
}

/// What [`publish`] did.
pub enum Published {
    /// Kafka acknowledged it.
    New { ts: i64 },
    /// Committed to the outbox, but Kafka did not acknowledge it in time: the relay publishes
    /// it (at least once, with this message id).
    Queued { ts: i64 },
    /// The idempotency key was used before: nothing new was sent.
    Replayed { message_id: String },
}

/// Past this after `kafka.send_timeout_ms`, a send's own produce has ended either way (the
/// producer's `message.timeout.ms` is the send timeout), so the relay may take the row.
const RELAY_GRACE: Duration = Duration::from_secs(2);

/// Sends a `message.created` event for `message_id`; the caller checked membership.
///
/// Exactly once as the sender sees it, whatever dies when:
/// 1. one short transaction claims the idempotency key and writes the event (and any worker
///    job) to the outbox, due for the relay only after the send timeout and a grace;
/// 2. with no connection held, the event is produced and its acknowledgement awaited;
/// 3. after the ack, the event's row is deleted and the job rows made due at once.
///
/// A crash after 1 leaves the rows: the relay publishes them once due, with this message id,
/// so a retry with the key gets this id and the job still runs. A crash after 2 leaves a row
/// the relay publishes again: the same event id, which the hub and the sink drop as a repeat.
/// No PostgreSQL connection is held while waiting for Kafka (or Redis), so a slow broker
/// cannot starve login or the subscribe proxy of connections.
pub async fn publish(
    s: &AppState,
    chat: i64,
    me: i64,
    message_id: &str,
    text: Option<String>,
    attachment: Option<Attachment>,
    key: Option<String>,
) -> Result<Published, ApiError> {
    let names = membership::display_names(s, &[me.to_string()]).await?;
    let ts = chorus_time_ms();
    let event = ChatEvent {
        v: VERSION,
        event_id: s.ulid(),
        chat_id: chat.to_string(),
        ts,
        body: EventBody::MessageCreated(Message {
            message_id: message_id.to_owned(),
            author: Author {
                id: me.to_string(),
                name: names.get(&me.to_string()).cloned(),
                avatar: None,
            },
            text,
            attachment,
            idempotency_key: key.clone(),
        }),
    };
    let payload = event.encode();
    // An attachment is also queued for its worker (voice: the transcriber; image: the
    // thumbnails).
    let queue = match &event.body {
        EventBody::MessageCreated(Message {
            attachment: Some(a),
            ..
        }) => match a.kind {
            AttachmentKind::Voice => Some(s.config.kafka.audio_topic.as_str()),
            AttachmentKind::Image => Some(s.config.kafka.image_topic.as_str()),
        },
        _ => None,
    }
    .filter(|t| !t.is_empty());
    let timeout = Duration::from_millis(s.config.kafka.send_timeout_ms);
    let due_after = timeout + RELAY_GRACE;

    let mut tx = s.db.begin().await?;
    if let Some(k) = &key {
        let claimed = sqlx::query(
            "INSERT INTO send_keys (user_id, key, chat_id, message_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, key) DO NOTHING RETURNING message_id",
        )
        .bind(me)
        .bind(k)
        .bind(chat)
        .bind(message_id)
        .fetch_optional(&mut *tx)
        .await?;
        if claimed.is_none() {
            let row = sqlx::query(
                "SELECT chat_id, message_id FROM send_keys WHERE user_id = $1 AND key = $2",
            )
            .bind(me)
            .bind(k)
            .fetch_one(&mut *tx)
            .await?;
            if row.try_get::<i64, _>("chat_id")? != chat {
                return Err(ApiError::Conflict(
                    "Idempotency-Key was used for another chat",
                ));
            }
            return Ok(Published::Replayed {
                message_id: row.try_get("message_id")?,
            });
        }
    }
    let row = crate::outbox::insert_due(
        &mut tx,
        &s.config.kafka.messages_topic,
        &event.chat_id,
        payload.clone(),
        due_after,
    )
    .await?;
    let mut jobs = Vec::new();
    if let Some(topic) = queue {
        jobs.push(
            crate::outbox::insert_due(&mut tx, topic, &event.chat_id, payload.clone(), due_after)
                .await?,
        );
    }
    tx.commit().await?;
    crate::failpoint::crash_point(s, "send.after_commit");

    let acked = crate::kafka::send(
        &s.producer,
        &s.config.kafka.messages_topic,
        &event.chat_id,
        &payload,
        timeout,
    )
    .await;
    if let Err(e) = acked {
        tracing::warn!(chat, error = %e, "send not acknowledged by kafka in time; the relay will publish it");
        s.metrics.messages_queued.inc();
        return Ok(Published::Queued { ts });
    }
    crate::failpoint::crash_point(s, "send.after_ack");
    // Best effort: if this fails, the relay publishes the event again once it is due (a
    // repeat with the same ids) and the jobs follow it then.
    if let Err(e) = crate::outbox::sent_directly(&s.db, row, &jobs).await {
        tracing::warn!(chat, error = %e, "clearing a sent message from the outbox");
    }
    if !jobs.is_empty() {
        s.outbox_wake.notify_one();
    }
    s.metrics.messages_sent.inc();
    Ok(Published::New { ts })
}

fn chorus_time_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
