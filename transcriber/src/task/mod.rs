//! The two tasks a worker runs on its topic's records, each in its own file: [`transcribe`]
//! (voice messages through Whisper) and [`thumbnail`] (image attachments). The loop around
//! them (read, dead-letter, produce, commit) is [`crate::worker`]'s.

pub mod thumbnail;
pub mod transcribe;

use std::sync::Arc;

use chorus_media::audio;
use chorus_protocol::event::AttachmentKind;

use crate::engine::Engine;
use crate::images::thumbnail::{Bounds, ThumbnailError};

/// What a worker does with its topic's records.
#[derive(Clone)]
pub enum Task {
    /// Voice messages of the audio topic, through Whisper.
    Transcribe(Arc<Engine>),
    /// Image attachments of the image topic, to thumbnails.
    Thumbnail(Bounds),
}

impl Task {
    pub fn kind(&self) -> AttachmentKind {
        match self {
            Task::Transcribe(_) => AttachmentKind::Voice,
            Task::Thumbnail(_) => AttachmentKind::Image,
        }
    }
}

/// Why a clip is refused for good.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the voice file {0} is missing")]
    Missing(String),
    #[error(transparent)]
    Audio(#[from] audio::AudioError),
    #[error("{0}")]
    Engine(String),
    #[error(transparent)]
    Image(#[from] ThumbnailError),
}
