//! Reading history: a chat's messages newest first from DynamoDB (through `chorus-history`,
//! which also describes the table the sink writes), with each author's current display name.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chorus_history::model::AUTHOR_ID;
use chorus_history::query::json_item;
use chorus_protocol::event::is_ulid;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::access::User;
use crate::body::Params;
use crate::chats::membership;
use crate::error::ApiError;
use crate::extract::ChatId;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// A message id: the page holds messages older than it.
    before: Option<String>,
    limit: Option<String>,
}

const MAX_PAGE: i32 = 100;
const DEFAULT_PAGE: i32 = 50;

/// `GET /chats/{id}/messages?before=<message id>&limit=<1..100>`: newest first. The cursor
/// is the last message id of a page; ids only grow, so messages sent meanwhile never shift a
/// later page.
pub async fn history(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
    Params(page): Params<Page>,
) -> Result<Response, ApiError> {
    let limit = match page.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| ApiError::Validation(format!("limit: 1 to {MAX_PAGE}")))?,
    };
    if let Some(b) = &page.before {
        if !is_ulid(b) {
            return Err(ApiError::Validation("before: a message id".into()));
        }
    }
    membership::require(&s, chat, me).await?;
    let items = s
        .history
        .page(&chat.to_string(), page.before.as_deref(), limit)
        .await
        .map_err(|e| {
            tracing::warn!(chat, error = %e, "history query failed");
            ApiError::Unavailable("history is unavailable; retry".into())
        })?;
    let authors: Vec<String> = {
        let mut a: Vec<String> = items
            .iter()
            .filter_map(|i| i.get(AUTHOR_ID).and_then(|v| v.as_s().ok()).cloned())
            .collect();
        a.sort_unstable();
        a.dedup();
        a
    };
    let names: HashMap<String, String> = membership::display_names(&s, &authors).await?;
    let messages: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut m = json_item(item);
            // The stored author id becomes the author the live event shows: id and name.
            if let Some(id) = m.remove(AUTHOR_ID) {
                let name = id.as_str().and_then(|i| names.get(i)).cloned();
                m.insert("author".into(), json!({"id": id, "name": name}));
            }
            Value::Object(m)
        })
        .collect();
    let next = (messages.len() as i32 == limit)
        .then(|| {
            messages
                .last()
                .and_then(|m| m["message_id"].as_str().map(str::to_owned))
        })
        .flatten();
    Ok(Json(json!({"messages": messages, "next_cursor": next})).into_response())
}
