//! The inboxes of a node's emulated sessions, by session id: where an `/emulation` request's
//! commands are handed over, whether it reached this node or was routed here from another.
//! Kept apart from the session ([`super::emulated`]) so the node can hold them without the
//! session's module and the node's importing each other.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// `/emulation` requests waiting for a session to read them. A client sends a few commands at
/// a time; past this, a local request waits (backpressure on the sender).
pub const INBOX: usize = 64;

/// The inboxes of this node's emulated sessions, by session id.
#[derive(Default)]
pub struct Inboxes {
    by_session: Mutex<HashMap<Arc<str>, mpsc::Sender<Bytes>>>,
}

/// Holds a session's inbox in [`Inboxes`]; removes it when dropped.
pub struct Registered<'a> {
    inboxes: &'a Inboxes,
    session: Arc<str>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.inboxes.by_session.lock().remove(&self.session);
    }
}

impl Inboxes {
    pub fn register(&self, session: Arc<str>, tx: mpsc::Sender<Bytes>) -> Registered<'_> {
        self.by_session.lock().insert(session.clone(), tx);
        Registered {
            inboxes: self,
            session,
        }
    }

    fn inbox(&self, session: &str) -> Option<mpsc::Sender<Bytes>> {
        self.by_session.lock().get(session).cloned()
    }

    /// Hands `data` (commands in the session's protocol) to the session; `false` when this
    /// node has no such session.
    pub async fn deliver(&self, session: &str, data: Bytes) -> bool {
        match self.inbox(session) {
            Some(tx) => tx.send(data).await.is_ok(),
            None => false,
        }
    }

    /// [`Self::deliver`] for a caller that cannot wait (the control channel's reader): in
    /// order, unless the inbox is full, when the commands wait on a task of their own.
    pub fn deliver_now(&self, session: &str, data: Bytes) -> bool {
        let Some(tx) = self.inbox(session) else {
            return false;
        };
        match tx.try_send(data) {
            Ok(()) => true,
            Err(TrySendError::Closed(_)) => false,
            Err(TrySendError::Full(data)) => {
                tokio::spawn(async move { tx.send(data).await });
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_session.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_is_reached_by_its_id_until_it_ends() {
        let inboxes = Inboxes::default();
        let (tx, mut rx) = mpsc::channel(1);
        {
            let _registered = inboxes.register("s1".into(), tx);
            assert!(inboxes.deliver("s1", Bytes::from_static(b"{}")).await);
            assert_eq!(rx.recv().await.as_deref(), Some(&b"{}"[..]));
            assert!(!inboxes.deliver("s2", Bytes::from_static(b"{}")).await);
            // Full: the second waits on a task of its own, still delivered.
            assert!(inboxes.deliver_now("s1", Bytes::from_static(b"1")));
            assert!(inboxes.deliver_now("s1", Bytes::from_static(b"2")));
            assert_eq!(rx.recv().await.as_deref(), Some(&b"1"[..]));
            assert_eq!(rx.recv().await.as_deref(), Some(&b"2"[..]));
        }
        assert!(inboxes.is_empty());
        assert!(!inboxes.deliver_now("s1", Bytes::from_static(b"{}")));
    }
}
