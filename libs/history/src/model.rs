//! The history data model: what a chat event becomes in the `messages` table.
//!
//! - Partition key `chat_id`, sort key `message_id` (a ULID): one chat's messages sit in one
//!   partition in creation order, so "newest first before cursor X" is one Query with
//!   `message_id < X`, `ScanIndexForward = false`, and the cursor is just the last ULID.
//! - An item holds what history shows: `author_id`, `created_at`, `text`, `attachment`, and
//!   what later events add (`edited_at`, `transcript`, `transcript_language`,
//!   `transcription_error`). The author's display name and avatar are live-UI metadata,
//!   hydrated by the API on read, never stored.
//! - Every event maps to a change of one item keyed by its message, so writing the same event
//!   twice leaves the same item: redelivery is harmless.
//!
//! See `docs/data-model.md` for the access patterns.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chorus_protocol::event::{Attachment, AttachmentKind, Author, ChatEvent, EventBody, Message};

pub const PARTITION_KEY: &str = "chat_id";
pub const SORT_KEY: &str = "message_id";
/// Who wrote a message; the API hydrates the display name on read.
pub const AUTHOR_ID: &str = "author_id";

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

pub type Item = HashMap<String, AttributeValue>;

/// The item an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub chat_id: String,
    pub message_id: String,
}

impl Key {
    pub fn item(&self) -> Item {
        HashMap::from([
            (PARTITION_KEY.to_owned(), s(&self.chat_id)),
            (SORT_KEY.to_owned(), s(&self.message_id)),
        ])
    }
}

/// What an event does to its item.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Write the whole item (a created message), replacing any earlier copy.
    Put(Item),
    /// Set these attributes if the item exists (an edit, a transcript). A change to a message
    /// that is not stored (deleted, or its creation dead-lettered) is dropped.
    Update(Vec<(String, AttributeValue)>),
    /// Remove the item.
    Delete,
}

/// Why a record cannot be stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unstorable {
    #[error("{0}")]
    Event(String),
    #[error("item of {0} bytes is over DynamoDB's 400 KB limit")]
    TooLarge(usize),
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Parses a record and says what it does to history (nothing, for events about the chat
/// itself), or why it cannot be stored.
pub fn change_of(payload: &[u8]) -> Result<Option<(Key, Change)>, Unstorable> {
    let event = ChatEvent::decode(payload).map_err(|e| Unstorable::Event(e.to_string()))?;
    let Some(message_id) = event.message_id().map(str::to_owned) else {
        return Ok(None);
    };
    let key = Key {
        chat_id: event.chat_id.clone(),
        message_id,
    };
    let ts = event.ts;
    let change = match event.body {
        EventBody::MessageCreated(m) => Change::Put(created(&key, m, ts)),
        EventBody::MessageEdited { text, .. } => Change::Update(vec![
            ("text".into(), AttributeValue::S(text)),
            ("edited_at".into(), n(ts)),
        ]),
        EventBody::MessageDeleted { .. } => Change::Delete,
        EventBody::MessageTranscribed {
            transcript,
            language,
            ..
        } => {
            let mut sets = vec![("transcript".into(), AttributeValue::S(transcript))];
            if let Some(l) = language {
                sets.push(("transcript_language".into(), AttributeValue::S(l)));
            }
            Change::Update(sets)
        }
        EventBody::TranscriptionFailed { reason, .. } => Change::Update(vec![(
            "transcription_error".into(),
            AttributeValue::S(reason),
        )]),
        EventBody::AttachmentProcessed { thumbnail, .. } => Change::Update(vec![(
            "thumbnail".into(),
            AttributeValue::M(
                [
                    ("key".to_owned(), AttributeValue::S(thumbnail.key)),
                    ("mime".to_owned(), AttributeValue::S(thumbnail.mime)),
                    ("width".to_owned(), n(i64::from(thumbnail.width))),
                    ("height".to_owned(), n(i64::from(thumbnail.height))),
                    ("size".to_owned(), n(thumbnail.size as i64)),
                ]
                .into(),
            ),
        )]),
        EventBody::AttachmentFailed { reason, .. } => {
            Change::Update(vec![("attachment_error".into(), AttributeValue::S(reason))])
        }
        EventBody::ChatUpdated { .. } => return Ok(None),
    };
    let size = change_size(&key, &change);
    if size > MAX_ITEM_BYTES {
        return Err(Unstorable::TooLarge(size));
    }
    Ok(Some((key, change)))
}

/// The stored form of a created message: what [`Message::for_history`] keeps, moved rather
/// than copied. The destructuring names every field, so a field added to the envelope does
/// not reach (or miss) history without a decision here.
fn created(key: &Key, m: Message, ts: i64) -> Item {
    let Message {
        message_id: _, // the sort key already
        author:
            Author {
                id: author_id,
                name: _,   // live UI only
                avatar: _, // live UI only
            },
        text,
        attachment,
        idempotency_key: _, // deduplicates sends, not history
    } = m;
    let mut item = key.item();
    item.insert(AUTHOR_ID.into(), AttributeValue::S(author_id));
    item.insert("created_at".into(), n(ts));
    if let Some(t) = text {
        item.insert("text".into(), AttributeValue::S(t));
    }
    if let Some(a) = &attachment {
        item.insert("attachment".into(), attachment_value(a));
    }
    item
}

fn attachment_value(a: &Attachment) -> AttributeValue {
    let kind = match a.kind {
        AttachmentKind::Voice => "voice",
        AttachmentKind::Image => "image",
    };
    let mut m = HashMap::from([
        ("kind".to_owned(), s(kind)),
        ("key".to_owned(), s(&a.key)),
        ("mime".to_owned(), s(&a.mime)),
        ("size".to_owned(), n(a.size)),
    ]);
    for (name, v) in [
        ("duration_ms", a.duration_ms),
        ("width", a.width.map(u64::from)),
        ("height", a.height.map(u64::from)),
    ] {
        if let Some(v) = v {
            m.insert(name.to_owned(), n(v));
        }
    }
    AttributeValue::M(m)
}

/// The size DynamoDB counts for an item: attribute names plus values (strings by UTF-8
/// length, numbers at most 21 bytes, maps 3 bytes plus 1 per element). Exact for what this
/// model writes, an upper bound for numbers.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(_) => 21,
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        other => format!("{other:?}").len(),
    }
}

/// The item size a change leads to at least (an update: the key plus what it sets).
fn change_size(key: &Key, change: &Change) -> usize {
    match change {
        Change::Put(item) => item_size(item),
        Change::Update(sets) => {
            item_size(&key.item())
                + sets
                    .iter()
                    .map(|(k, v)| k.len() + value_size(v))
                    .sum::<usize>()
        }
        Change::Delete => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ULID: &str = "01JD3Q6Z4X5N8R2T7V9W0YBC1E";

    fn event(kind: &str, data: serde_json::Value) -> Vec<u8> {
        json!({"v": 1, "event_id": "01JD3Q6Z4X5N8R2T7V9W0YBC1F", "chat_id": "42",
               "ts": 1_763_800_000_000_i64, "type": kind, "data": data})
        .to_string()
        .into_bytes()
    }

    fn stored(payload: &[u8]) -> (Key, Change) {
        change_of(payload)
            .expect("storable")
            .expect("about a message")
    }

    #[test]
    fn events_about_the_chat_itself_store_nothing() {
        let e = event(
            "chat.updated",
            json!({"change": "member.removed", "user_id": "7"}),
        );
        assert_eq!(change_of(&e), Ok(None));
    }

    #[test]
    fn a_created_message_is_stored_without_author_metadata() {
        let (key, change) = stored(&event(
            "message.created",
            json!({"message_id": ULID, "author": {"id": "7", "name": "Ann", "avatar": "https://a"},
                   "text": "hi", "attachment": {"kind": "voice", "key": "k/1", "mime": "audio/ogg",
                   "size": 10, "duration_ms": 1500}}),
        ));
        assert_eq!(
            key,
            Key {
                chat_id: "42".into(),
                message_id: ULID.into()
            }
        );
        let Change::Put(item) = change else {
            panic!("a put")
        };
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "attachment",
                "author_id",
                "chat_id",
                "created_at",
                "message_id",
                "text"
            ]
        );
        assert_eq!(item["author_id"], s("7"));
        assert_eq!(item["created_at"], n(1_763_800_000_000_i64));
        let AttributeValue::M(a) = &item["attachment"] else {
            panic!("a map")
        };
        assert_eq!(a["duration_ms"], n(1500));
        assert!(!a.contains_key("width"));
    }

    #[test]
    fn later_events_update_or_delete_the_same_item() {
        let (_, edit) = stored(&event(
            "message.edited",
            json!({"message_id": ULID, "text": "fixed"}),
        ));
        assert_eq!(
            edit,
            Change::Update(vec![
                ("text".into(), s("fixed")),
                ("edited_at".into(), n(1_763_800_000_000_i64))
            ])
        );
        let (_, del) = stored(&event("message.deleted", json!({"message_id": ULID})));
        assert_eq!(del, Change::Delete);
        let (_, t) = stored(&event(
            "message.transcribed",
            json!({"message_id": ULID, "transcript": "hello", "language": "en"}),
        ));
        assert!(matches!(t, Change::Update(sets) if sets.len() == 2));
        let (_, thumb) = stored(&event(
            "attachment.processed",
            json!({"message_id": ULID, "thumbnail": {"key": "chats/1/x.png.thumb.jpg",
                   "mime": "image/jpeg", "width": 320, "height": 240, "size": 9000}}),
        ));
        let Change::Update(sets) = thumb else {
            panic!("{thumb:?}")
        };
        let [(name, AttributeValue::M(m))] = sets.as_slice() else {
            panic!("{sets:?}")
        };
        assert_eq!(name, "thumbnail");
        assert_eq!(m["key"], s("chats/1/x.png.thumb.jpg"));
        assert_eq!(m["width"], n(320));
        let (_, failed) = stored(&event(
            "attachment.failed",
            json!({"message_id": ULID, "reason": "too many pixels"}),
        ));
        assert_eq!(
            failed,
            Change::Update(vec![("attachment_error".into(), s("too many pixels"))])
        );
    }

    #[test]
    fn unusable_records_say_why() {
        assert!(matches!(change_of(b"{not json"), Err(Unstorable::Event(_))));
        let huge = "x".repeat(MAX_ITEM_BYTES);
        let e = change_of(&event(
            "message.created",
            json!({"message_id": ULID, "author": {"id": "7"}, "text": huge}),
        ))
        .expect_err("too large");
        assert!(matches!(e, Unstorable::TooLarge(n) if n > MAX_ITEM_BYTES));
        assert!(e.to_string().contains("400 KB"));
    }
}
