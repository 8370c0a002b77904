//! Attachments: uploads into the object store, and members-only reads with HTTP Range.
//!
//! - `POST /chats/{id}/images` (multipart: `file`, optional `text`): JPEG, PNG, WebP or GIF,
//!   recognised by content, not by the client's claim; dimensions read from the header, and
//!   an image over `media.max_image_pixels` refused before anything decodes it. The blob is
//!   stored at `chats/<chat>/<message id>.<ext>`, then the message goes through Kafka like a
//!   text message, with the attachment's kind, key, MIME type, size and dimensions.
//! - `POST /chats/{id}/voice` (multipart: `file`, optional `text`): WAV, FLAC, MP3,
//!   OGG (Vorbis or Opus) or WebM (Opus), recognised by content and decoded in full on the
//!   blocking pool, so a file that does not decode is refused here (422) and the duration is
//!   exact. Sent like an image; the message is also queued on the audio topic for the
//!   transcriber, whose transcript follows on the chat's stream.
//! - `GET /media/{key}`: members of the key's chat only (404 otherwise); one byte range per
//!   request (`Range: bytes=a-b`, `a-`, `-n`) answered 206, so players can seek.
//!
//! The store is the `object_store` crate's local filesystem, the embedded default, or S3
//! (`media.s3.bucket`), where `GET /media/{key}` answers 307 to a presigned URL instead.

pub mod handlers;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub fn routes(limits: &crate::config::Media) -> Router<AppState> {
    // Multipart bodies up to each upload's limit plus the form's own overhead.
    let upload = |max: usize| DefaultBodyLimit::max(max + 64 * 1024);
    Router::new()
        .route(
            "/chats/{id}/images",
            post(handlers::upload_image).layer(upload(limits.max_image_bytes)),
        )
        .route(
            "/chats/{id}/voice",
            post(handlers::upload_voice).layer(upload(limits.max_voice_bytes)),
        )
        .route("/media/{*key}", get(handlers::read))
}
