//! Test fixtures, from the shared test kit: tansu on a free loopback port, a hub process
//! delivering the chat topic live and the raw protocol client, real speech; and the
//! transcriber as its own process (so a test can `kill -9` it mid-job).
#![allow(dead_code, clippy::unwrap_used)]

pub use chorus_testkit::hub::HubProcess;
pub use chorus_testkit::process::ServiceProcess as TranscriberProcess;
pub use chorus_testkit::{client, eventually, speech, tansu};

/// `chorus-transcriber serve` as its own process with these `CHORUS_TRANSCRIBER__*`
/// settings (keys without the prefix), logging to a file the test can watch.
pub async fn start_transcriber(settings: &[(&str, String)]) -> TranscriberProcess {
    TranscriberProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_chorus-transcriber")),
        &["serve"],
        "CHORUS_TRANSCRIBER__",
        settings,
    )
    .await
}

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
