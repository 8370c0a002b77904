//! The chat event envelope: what the API produces to the chat-message topic (keyed by chat id)
//! and what the hub (live delivery), the sink (history) and the transcriber consume.
//!
//! One JSON object per Kafka record:
//!
//! ```json
//! {"v":1,"event_id":"01J…","chat_id":"42","ts":1763800000000,
//!  "type":"message.created","data":{"message_id":"01J…","author":{"id":"7","name":"Ann"},"text":"hi"}}
//! ```
//!
//! - `v` is the envelope version; a consumer rejects versions it does not know rather than
//!   guess (the record goes to its dead-letter topic).
//! - `event_id` is unique per event and is the deduplication key for at-least-once delivery.
//! - Every event of chat `<id>` belongs on channel `chat:<id>`; see [`ChatEvent::channel`].
//! - `type` says what `data` holds. Events about an existing message carry its `message_id`
//!   (a ULID, so ids sort by creation time), and consumers apply them idempotently.

use serde::{Deserialize, Serialize};

/// The envelope version this crate writes and reads.
pub const VERSION: u32 = 1;

/// The namespace of chat channels: chat `<id>` is channel `chat:<id>`.
pub const CHAT_NAMESPACE: &str = "chat";
/// What every chat channel's name starts with.
pub const CHAT_CHANNEL_PREFIX: &str = "chat:";

/// The channel of chat `id`, `chat:<id>`: the one place that spells it (the API's tokens and
/// unsubscribes, the hub's chat-event consumer, the events themselves).
pub fn chat_channel(id: impl std::fmt::Display) -> String {
    format!("{CHAT_CHANNEL_PREFIX}{id}")
}

/// The chat id of a chat channel (`chat:<id>` → `<id>`); `None` for any other channel.
pub fn chat_id_of(channel: &str) -> Option<&str> {
    channel.strip_prefix(CHAT_CHANNEL_PREFIX)
}

/// Where a chat's members publish and read who is typing: client publications through the
/// hub (allowed by the API's publish proxy), never stored.
pub const TYPING_CHANNEL_PREFIX: &str = "typing:";

/// The chat id in a `typing:<id>` channel.
pub fn typing_chat_id_of(channel: &str) -> Option<&str> {
    channel.strip_prefix(TYPING_CHANNEL_PREFIX)
}

/// The typing channel of chat `id`, `typing:<id>`.
pub fn typing_channel(id: impl std::fmt::Display) -> String {
    format!("{TYPING_CHANNEL_PREFIX}{id}")
}

/// Every channel a member holds because of chat `id`: what a removal must cut. A channel added
/// for chats later is added here, so no removal path can forget it.
pub fn chat_channels(id: impl std::fmt::Display) -> [String; 2] {
    [chat_channel(&id), typing_channel(&id)]
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEvent {
    pub v: u32,
    pub event_id: String,
    pub chat_id: String,
    /// When the producer created the event, Unix milliseconds.
    pub ts: i64,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventBody {
    #[serde(rename = "message.created")]
    MessageCreated(Message),
    #[serde(rename = "message.edited")]
    MessageEdited { message_id: String, text: String },
    #[serde(rename = "message.deleted")]
    MessageDeleted { message_id: String },
    #[serde(rename = "message.transcribed")]
    MessageTranscribed {
        message_id: String,
        transcript: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
    #[serde(rename = "message.transcription_failed")]
    TranscriptionFailed { message_id: String, reason: String },
    /// An image attachment's thumbnail is ready (oriented by its EXIF, metadata stripped).
    #[serde(rename = "attachment.processed")]
    AttachmentProcessed {
        message_id: String,
        thumbnail: Thumbnail,
    },
    /// An image attachment could not be processed (a decompression bomb, a corrupt file).
    #[serde(rename = "attachment.failed")]
    AttachmentFailed { message_id: String, reason: String },
    /// The chat itself changed (renamed, deleted, a member added or removed): live clients
    /// refresh their view of it. It rides the chat's own topic partition, so it is ordered
    /// with the messages and recoverable like them; history stores nothing for it.
    #[serde(rename = "chat.updated")]
    ChatUpdated {
        /// The state event behind it: `chat.updated`, `chat.deleted`, `member.added`,
        /// `member.removed`.
        change: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
}

/// A message as sent. `author.name` and `author.avatar` are for the live UI only; history
/// stores [`Message::for_history`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub message_id: String,
    pub author: Author,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// The sender's idempotency key, when it gave one: a retried send carries the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Voice,
    Image,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    /// The object store key.
    pub key: String,
    pub mime: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// A thumbnail in the object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    pub key: String,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub size: u64,
}

/// Why a record is not a usable chat event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a chat event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown envelope version {0} (this build reads {VERSION})")]
    Version(u32),
    #[error("bad {field}: {value:?}")]
    Field { field: &'static str, value: String },
}

impl ChatEvent {
    /// Parses and checks a record's value.
    pub fn decode(bytes: &[u8]) -> Result<Self, EventError> {
        let event: ChatEvent = serde_json::from_slice(bytes)?;
        if event.v != VERSION {
            return Err(EventError::Version(event.v));
        }
        if !is_chat_id(&event.chat_id) {
            return Err(EventError::Field {
                field: "chat_id",
                value: event.chat_id,
            });
        }
        if let Some(id) = event.message_id().filter(|id| !is_ulid(id)) {
            return Err(EventError::Field {
                field: "message_id",
                value: id.to_string(),
            });
        }
        Ok(event)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("invariant: the envelope serializes")
    }

    /// The channel live subscribers of this chat listen on.
    pub fn channel(&self) -> String {
        chat_channel(&self.chat_id)
    }

    /// The message this event creates or changes; `None` for events about the chat itself.
    pub fn message_id(&self) -> Option<&str> {
        match &self.body {
            EventBody::MessageCreated(m) => Some(&m.message_id),
            EventBody::MessageEdited { message_id, .. }
            | EventBody::MessageDeleted { message_id }
            | EventBody::MessageTranscribed { message_id, .. }
            | EventBody::TranscriptionFailed { message_id, .. }
            | EventBody::AttachmentProcessed { message_id, .. }
            | EventBody::AttachmentFailed { message_id, .. } => Some(message_id),
            EventBody::ChatUpdated { .. } => None,
        }
    }
}

impl Message {
    /// The message without the author metadata that only the live UI needs.
    pub fn for_history(&self) -> Message {
        Message {
            author: Author {
                id: self.author.id.clone(),
                name: None,
                avatar: None,
            },
            ..self.clone()
        }
    }
}

/// Chat ids become part of a channel name: keep them to characters every channel allows.
pub fn is_chat_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A ULID: 26 characters of Crockford base32, the first no greater than 7 (128 bits).
pub fn is_ulid(id: &str) -> bool {
    id.len() == 26
        && id.as_bytes()[0] <= b'7'
        && id.bytes().all(|b| {
            matches!(b, b'0'..=b'9' | b'A'..=b'H' | b'J' | b'K' | b'M' | b'N' | b'P'..=b'T' | b'V'..=b'Z')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_channel_is_its_namespace_and_id() {
        assert_eq!(CHAT_CHANNEL_PREFIX, format!("{CHAT_NAMESPACE}:"));
        assert_eq!(chat_channel(42), "chat:42");
        assert_eq!(chat_id_of("chat:42"), Some("42"));
        assert_eq!(chat_id_of("chats:42"), None);
        assert_eq!(chat_id_of("news:42"), None);
    }

    const ULID: &str = "01JD3Q6Z4X5N8R2T7V9W0YBC1E";

    fn created() -> ChatEvent {
        ChatEvent {
            v: VERSION,
            event_id: "01JD3Q6Z4X5N8R2T7V9W0YBC1F".into(),
            chat_id: "42".into(),
            ts: 1_763_800_000_000,
            body: EventBody::MessageCreated(Message {
                message_id: ULID.into(),
                author: Author {
                    id: "7".into(),
                    name: Some("Ann".into()),
                    avatar: Some("https://img/ann.png".into()),
                },
                text: Some("hi".into()),
                attachment: None,
                idempotency_key: Some("k-1".into()),
            }),
        }
    }

    #[test]
    fn round_trips_with_the_documented_shape() {
        let e = created();
        let json: serde_json::Value = serde_json::from_slice(&e.encode()).expect("json");
        assert_eq!(json["type"], "message.created");
        assert_eq!(json["data"]["author"]["name"], "Ann");
        assert_eq!(json["chat_id"], "42");
        assert_eq!(ChatEvent::decode(&e.encode()).expect("decodes"), e);
        assert_eq!(e.channel(), "chat:42");
        assert_eq!(e.message_id(), Some(ULID));
    }

    #[test]
    fn every_event_type_round_trips() {
        let bodies = [
            EventBody::MessageEdited {
                message_id: ULID.into(),
                text: "edited".into(),
            },
            EventBody::MessageDeleted {
                message_id: ULID.into(),
            },
            EventBody::MessageTranscribed {
                message_id: ULID.into(),
                transcript: "hello there".into(),
                language: Some("en".into()),
            },
            EventBody::TranscriptionFailed {
                message_id: ULID.into(),
                reason: "not audio".into(),
            },
        ];
        for body in bodies {
            let e = ChatEvent { body, ..created() };
            assert_eq!(ChatEvent::decode(&e.encode()).expect("decodes"), e);
        }
    }

    #[test]
    fn history_drops_the_authors_display_metadata_only() {
        let EventBody::MessageCreated(m) = created().body else {
            unreachable!()
        };
        let h = m.for_history();
        assert_eq!((h.author.name, h.author.avatar), (None, None));
        assert_eq!(h.author.id, "7");
        assert_eq!(h.text.as_deref(), Some("hi"));
        assert_eq!(h.message_id, ULID);
    }

    #[test]
    fn bad_records_get_a_precise_error() {
        let mut v: serde_json::Value = serde_json::from_slice(&created().encode()).expect("json");
        v["v"] = 2.into();
        assert!(matches!(
            ChatEvent::decode(v.to_string().as_bytes()),
            Err(EventError::Version(2))
        ));
        v["v"] = 1.into();
        v["chat_id"] = "a:b".into();
        assert!(matches!(
            ChatEvent::decode(v.to_string().as_bytes()),
            Err(EventError::Field {
                field: "chat_id",
                ..
            })
        ));
        v["chat_id"] = "42".into();
        v["data"]["message_id"] = "not-a-ulid".into();
        assert!(matches!(
            ChatEvent::decode(v.to_string().as_bytes()),
            Err(EventError::Field {
                field: "message_id",
                ..
            })
        ));
        v["type"] = "message.exploded".into();
        assert!(matches!(
            ChatEvent::decode(v.to_string().as_bytes()),
            Err(EventError::Json(_))
        ));
        assert!(matches!(
            ChatEvent::decode(b"\xff{"),
            Err(EventError::Json(_))
        ));
    }

    #[test]
    fn ulids_are_checked_by_alphabet_and_length() {
        assert!(is_ulid(ULID));
        assert!(!is_ulid("01JD3Q6Z4X5N8R2T7V9W0YBC1")); // 25 characters
        assert!(!is_ulid("01JD3Q6Z4X5N8R2T7V9W0YBC1I")); // I is not Crockford base32
        assert!(!is_ulid("81JD3Q6Z4X5N8R2T7V9W0YBC1E")); // over 128 bits
    }
}
