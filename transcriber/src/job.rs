//! One record of the audio or image topic: a `message.created` envelope with a voice (image)
//! attachment, as the API queues it, and the events a job ends in.

use chorus_protocol::event::{AttachmentKind, ChatEvent, EventBody, Thumbnail, VERSION};

/// A voice message to transcribe, or an image to thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub chat_id: String,
    pub message_id: String,
    /// The blob's object store key.
    pub key: String,
}

impl Job {
    /// `Ok(None)` for a record that is a valid event but no attachment of this `kind` (nothing
    /// to do); `Err` for one that does not parse (dead-lettered).
    pub fn from_record(payload: &[u8], kind: AttachmentKind) -> Result<Option<Job>, String> {
        let event = ChatEvent::decode(payload).map_err(|e| e.to_string())?;
        let EventBody::MessageCreated(message) = event.body else {
            return Ok(None);
        };
        let Some(attachment) = message.attachment.filter(|a| a.kind == kind) else {
            return Ok(None);
        };
        Ok(Some(Job {
            chat_id: event.chat_id,
            message_id: message.message_id,
            key: attachment.key,
        }))
    }

    /// The event id of this job's outcome. It is the same every time the job runs, so an
    /// outcome produced twice (a worker died after producing, before committing) is delivered
    /// once: the hub deduplicates a chat's stream by event id, and the sink's update is the
    /// same both times.
    fn outcome_id(&self, what: &str) -> String {
        format!("{}.{what}", self.message_id)
    }

    pub fn transcribed(&self, transcript: String, language: Option<String>, ts: i64) -> ChatEvent {
        self.outcome(
            "transcript",
            ts,
            EventBody::MessageTranscribed {
                message_id: self.message_id.clone(),
                transcript,
                language,
            },
        )
    }

    pub fn failed(&self, reason: String, ts: i64) -> ChatEvent {
        self.outcome(
            "transcript",
            ts,
            EventBody::TranscriptionFailed {
                message_id: self.message_id.clone(),
                reason,
            },
        )
    }

    pub fn processed(&self, thumbnail: Thumbnail, ts: i64) -> ChatEvent {
        self.outcome(
            "thumbnail",
            ts,
            EventBody::AttachmentProcessed {
                message_id: self.message_id.clone(),
                thumbnail,
            },
        )
    }

    pub fn image_failed(&self, reason: String, ts: i64) -> ChatEvent {
        self.outcome(
            "thumbnail",
            ts,
            EventBody::AttachmentFailed {
                message_id: self.message_id.clone(),
                reason,
            },
        )
    }

    fn outcome(&self, what: &str, ts: i64, body: EventBody) -> ChatEvent {
        ChatEvent {
            v: VERSION,
            event_id: self.outcome_id(what),
            chat_id: self.chat_id.clone(),
            ts,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOICE: &str = r#"{"v":1,"event_id":"01JD3Q6Z4X5N8R2T7V9W0YBC1F","chat_id":"42","ts":1,
        "type":"message.created","data":{"message_id":"01JD3Q6Z4X5N8R2T7V9W0YBC1E",
        "author":{"id":"7"},"attachment":{"kind":"voice","key":"chats/42/a.ogg",
        "mime":"audio/ogg","size":10,"duration_ms":1000}}}"#;

    #[test]
    fn takes_its_kind_of_attachment_skips_the_rest_and_refuses_garbage() {
        let voice = AttachmentKind::Voice;
        let job = Job::from_record(VOICE.as_bytes(), voice).unwrap().unwrap();
        assert_eq!(job.key, "chats/42/a.ogg");
        let image = VOICE.replace(r#""kind":"voice""#, r#""kind":"image""#);
        assert_eq!(Job::from_record(image.as_bytes(), voice).unwrap(), None);
        assert!(Job::from_record(image.as_bytes(), AttachmentKind::Image)
            .unwrap()
            .is_some());
        assert!(Job::from_record(b"{not json", voice).is_err());
    }

    #[test]
    fn outcomes_of_one_job_share_an_event_id() {
        let job = Job::from_record(VOICE.as_bytes(), AttachmentKind::Voice)
            .unwrap()
            .unwrap();
        let a = job.transcribed("hi".into(), None, 1);
        let b = job.transcribed("hi".into(), None, 2);
        assert_eq!(a.event_id, b.event_id);
        let decoded = ChatEvent::decode(&a.encode()).unwrap();
        assert_eq!(decoded.message_id(), Some(job.message_id.as_str()));
    }
}
