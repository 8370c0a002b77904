//! A connection's outbound queue, bounded in bytes.
//!
//! Fan-out pushes shared frames ([`Utf8Bytes`] clones, no copy) from other tasks; the
//! connection task drains them. Past `max_bytes` the queue closes itself with the slow-client
//! disconnect and drops what it held, so a stalled reader costs at most `max_bytes`.

use std::collections::VecDeque;

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::codes::{Disconnect, DISCONNECT_SLOW};

use super::handle::Control;

/// An item for the connection task.
#[derive(Debug)]
pub enum Out {
    Frame(Utf8Bytes),
    /// A server-side action (API unsubscribe, disconnect, ...), run by the connection task.
    Control(Box<Control>),
}

#[derive(Debug, Default)]
pub struct OutQueue {
    items: VecDeque<Out>,
    bytes: usize,
    closed: Option<Disconnect>,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The queue had already been closed; the item was dropped.
    Closed,
    /// This push overflowed the queue, which is now closed as slow.
    Overflow,
}

impl OutQueue {
    pub fn push(&mut self, out: Out, max_bytes: usize) -> Pushed {
        if self.closed.is_some() {
            return Pushed::Closed;
        }
        if let Out::Frame(f) = &out {
            if self.bytes + f.len() > max_bytes {
                self.close(DISCONNECT_SLOW);
                return Pushed::Overflow;
            }
            self.bytes += f.len();
        }
        self.items.push_back(out);
        Pushed::Queued
    }

    /// Closes the queue; the first reason wins. Queued items are freed at once.
    pub fn close(&mut self, reason: Disconnect) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.items = VecDeque::new();
            self.bytes = 0;
        }
    }

    /// Moves everything queued into `into`, and says whether the queue is closed.
    pub fn drain(&mut self, into: &mut Vec<Out>) -> Option<Disconnect> {
        into.extend(self.items.drain(..));
        self.bytes = 0;
        if self.items.capacity() > 64 {
            // A burst grew the buffer; give the memory back rather than keep it per connection.
            self.items.shrink_to(8);
        }
        self.closed
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Out {
        Out::Frame(Utf8Bytes::from("x".repeat(n)))
    }

    #[test]
    fn overflow_closes_as_slow_and_frees_memory() {
        let mut q = OutQueue::default();
        for _ in 0..10 {
            assert_eq!(q.push(frame(100), 1000), Pushed::Queued);
        }
        assert_eq!(q.bytes(), 1000);
        assert_eq!(q.push(frame(1), 1000), Pushed::Overflow);
        assert_eq!(q.bytes(), 0);
        assert_eq!(q.push(frame(1), 1000), Pushed::Closed);
        let mut out = Vec::new();
        assert_eq!(q.drain(&mut out), Some(DISCONNECT_SLOW));
        assert!(
            out.is_empty(),
            "a slow client's backlog is dropped, not delivered"
        );
    }

    #[test]
    fn memory_stays_bounded_under_endless_pushes() {
        let mut q = OutQueue::default();
        let mut max_seen = 0;
        for _ in 0..100_000 {
            q.push(frame(64), 4096);
            max_seen = max_seen.max(q.bytes());
        }
        assert!(max_seen <= 4096);
    }

    #[test]
    fn drain_returns_items_in_order() {
        let mut q = OutQueue::default();
        q.push(Out::Frame(Utf8Bytes::from("a")), 100);
        q.push(Out::Frame(Utf8Bytes::from("b")), 100);
        let mut out = Vec::new();
        assert_eq!(q.drain(&mut out), None);
        let texts: Vec<&str> = out
            .iter()
            .map(|o| {
                if let Out::Frame(f) = o {
                    f.as_str()
                } else {
                    ""
                }
            })
            .collect();
        assert_eq!(texts, vec!["a", "b"]);
        assert_eq!(q.bytes(), 0);
    }
}
