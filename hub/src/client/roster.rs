//! Every open connection of the node, connected or not, so shutdown can reach each one.
//!
//! The alternative, each connection task also waiting on the node's shutdown token, puts
//! every idle connection in one shared waiter list whose lock each task takes on every
//! wake-up. Here a connection costs one slot (8 bytes) and shutdown walks the slots once.

use std::sync::{Arc, Weak};

use chorus_protocol::codes::Disconnect;
use parking_lot::Mutex;

use super::ClientHandle;

#[derive(Default)]
pub struct Roster {
    inner: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    slots: Vec<Option<Weak<ClientHandle>>>,
    free: Vec<usize>,
}

/// Holds a connection's slot; frees it when dropped.
pub struct Enrolled<'a> {
    roster: &'a Roster,
    slot: usize,
}

/// A connection the node took (see `Node::admit`): enrolled, and counted in the open
/// connections gauge, until dropped however its task ends.
pub struct Admitted<'a> {
    _enrolled: Enrolled<'a>,
    open: &'a prometheus::IntGauge,
}

impl<'a> Admitted<'a> {
    pub fn new(enrolled: Enrolled<'a>, open: &'a prometheus::IntGauge) -> Self {
        open.inc();
        Admitted {
            _enrolled: enrolled,
            open,
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl Roster {
    /// Enrolls a connection unless `limit` connections are open already.
    pub fn enroll(&self, handle: &Arc<ClientHandle>, limit: usize) -> Option<Enrolled<'_>> {
        let mut s = self.inner.lock();
        if s.slots.len() - s.free.len() >= limit {
            return None;
        }
        let weak = Some(Arc::downgrade(handle));
        let slot = match s.free.pop() {
            Some(i) => {
                s.slots[i] = weak;
                i
            }
            None => {
                s.slots.push(weak);
                s.slots.len() - 1
            }
        };
        Some(Enrolled { roster: self, slot })
    }

    /// Asks every enrolled connection to close with `reason`.
    pub fn disconnect_all(&self, reason: Disconnect) {
        let handles: Vec<Arc<ClientHandle>> = self
            .inner
            .lock()
            .slots
            .iter()
            .filter_map(|w| w.as_ref().and_then(Weak::upgrade))
            .collect();
        for h in handles {
            h.disconnect(reason);
        }
    }

    pub fn len(&self) -> usize {
        let s = self.inner.lock();
        s.slots.len() - s.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Enrolled<'_> {
    fn drop(&mut self) {
        let mut s = self.roster.inner.lock();
        s.slots[self.slot] = None;
        s.free.push(self.slot);
        // Give the memory back after a connection storm has passed.
        if s.free.len() == s.slots.len() && s.slots.capacity() > 1024 {
            *s = Slots::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::codes::DISCONNECT_SHUTDOWN;

    #[test]
    fn slots_are_reused_and_disconnect_reaches_every_enrolled_handle() {
        let roster = Roster::default();
        let a = Arc::new(ClientHandle::new("a".into(), 1024));
        let b = Arc::new(ClientHandle::new("b".into(), 1024));
        let ea = roster.enroll(&a, 2).expect("room for a");
        {
            let _eb = roster.enroll(&b, 2).expect("room for b");
            let extra = Arc::new(ClientHandle::new("x".into(), 1024));
            assert!(roster.enroll(&extra, 2).is_none(), "the limit holds");
            assert_eq!(roster.len(), 2);
        }
        assert_eq!(roster.len(), 1);
        let c = Arc::new(ClientHandle::new("c".into(), 1024));
        let _ec = roster.enroll(&c, 2).expect("b's place is free again");
        assert_eq!(roster.inner.lock().slots.len(), 2, "b's slot was reused");
        roster.disconnect_all(DISCONNECT_SHUTDOWN);
        for h in [&a, &c] {
            assert_eq!(h.take_queued().closed, Some(DISCONNECT_SHUTDOWN));
        }
        assert_eq!(b.take_queued().closed, None, "b had left");
        drop(ea);
    }
}
