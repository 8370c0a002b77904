//! Test fixtures: tansu on a free loopback port, a hub delivering the chat topic live, the
//! hub's raw protocol client, real speech, and the transcriber as its own process (so a test
//! can `kill -9` it mid-job).
#![allow(dead_code, clippy::unwrap_used)]

#[path = "../../../hub/tests/common/client.rs"]
pub mod client;
#[path = "../../../hub/tests/common/live.rs"]
pub mod live;
#[path = "../../../hub/tests/common/net.rs"]
pub mod net;
pub mod process;
pub mod speech;
#[path = "../../../hub/tests/common/tansu.rs"]
pub mod tansu;

pub use net::{eventually, listening};
pub use tansu::free_port;

use chorus_protocol::event::{Attachment, AttachmentKind, Author, ChatEvent, EventBody, Message};

/// The `message.created` event the API queues on the audio topic for a voice clip at `key`.
pub fn voice_event(chat: &str, message_id: &str, key: &str, size: usize) -> ChatEvent {
    attachment_event(chat, message_id, key, size, AttachmentKind::Voice)
}

/// The same for an image.
pub fn attachment_event(
    chat: &str,
    message_id: &str,
    key: &str,
    size: usize,
    kind: AttachmentKind,
) -> ChatEvent {
    ChatEvent {
        v: 1,
        event_id: tansu::ulid(fastrand::u64(1..u64::MAX / 4)),
        chat_id: chat.into(),
        ts: 1,
        body: EventBody::MessageCreated(Message {
            message_id: message_id.into(),
            author: Author {
                id: "7".into(),
                name: None,
                avatar: None,
            },
            text: None,
            attachment: Some(Attachment {
                kind,
                key: key.into(),
                mime: "application/octet-stream".into(),
                size: size as u64,
                duration_ms: None,
                width: None,
                height: None,
            }),
            idempotency_key: None,
        }),
    }
}
