//! The chat state event: what the API's outbox relay produces to the state topic
//! (`chat.state`, keyed by chat id) after a change to a chat or its membership commits in
//! PostgreSQL. Consumers (the API's own event consumer today) invalidate caches and tell the
//! hub; delivery is at least once, so `event_id` deduplicates and every effect is idempotent.
//!
//! ```json
//! {"v":1,"event_id":"01J…","chat_id":"42","ts":1763800000000,
//!  "type":"member.removed","data":{"user_id":"7"}}
//! ```

use serde::{Deserialize, Serialize};

pub use crate::event::VERSION;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEvent {
    pub v: u32,
    pub event_id: String,
    pub chat_id: String,
    /// When the change committed, Unix milliseconds.
    pub ts: i64,
    #[serde(flatten)]
    pub body: StateBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum StateBody {
    #[serde(rename = "chat.created")]
    ChatCreated { title: String, owner_id: String },
    #[serde(rename = "chat.updated")]
    ChatUpdated { title: String },
    /// Carries the members at deletion: their caches and subscriptions go too.
    #[serde(rename = "chat.deleted")]
    ChatDeleted { members: Vec<String> },
    /// A member joined, or an existing member's role changed.
    #[serde(rename = "member.added")]
    MemberAdded { user_id: String, role: String },
    /// Removed by an admin, or left.
    #[serde(rename = "member.removed")]
    MemberRemoved { user_id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("not a state event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown envelope version {0} (this build reads {VERSION})")]
    Version(u32),
}

impl StateEvent {
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let event: StateEvent = serde_json::from_slice(bytes)?;
        if event.v != VERSION {
            return Err(StateError::Version(event.v));
        }
        Ok(event)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("invariant: the state event serializes")
    }

    /// The users whose view of this chat changed: their membership cache entries go stale.
    pub fn affected_users(&self) -> Vec<&str> {
        match &self.body {
            StateBody::ChatCreated { owner_id, .. } => vec![owner_id],
            StateBody::ChatUpdated { .. } => Vec::new(),
            StateBody::ChatDeleted { members } => members.iter().map(String::as_str).collect(),
            StateBody::MemberAdded { user_id, .. } | StateBody::MemberRemoved { user_id } => {
                vec![user_id]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_versions() {
        let e = StateEvent {
            v: VERSION,
            event_id: "e1".into(),
            chat_id: "42".into(),
            ts: 1,
            body: StateBody::MemberRemoved {
                user_id: "7".into(),
            },
        };
        let bytes = e.encode();
        let text = String::from_utf8(bytes.clone()).unwrap_or_default();
        assert!(
            text.contains(r#""type":"member.removed","data":{"user_id":"7"}"#),
            "{text}"
        );
        assert_eq!(StateEvent::decode(&bytes).ok(), Some(e.clone()));
        assert_eq!(e.affected_users(), vec!["7"]);
        let v2 = text.replace(r#""v":1"#, r#""v":2"#);
        assert!(matches!(
            StateEvent::decode(v2.as_bytes()),
            Err(StateError::Version(2))
        ));
        assert!(StateEvent::decode(b"{}").is_err());
    }
}
