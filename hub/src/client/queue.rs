//! A connection's outbound queue, bounded in bytes.
//!
//! Fan-out pushes shared frames ([`Frame`] clones, no copy) from other tasks; the
//! connection task drains them. Past `max_bytes` the queue closes itself with the slow-client
//! disconnect and drops what it held, so a stalled reader costs at most `max_bytes`.
//!
//! On a WebSocket the fan-out may skip the queue and write a publication to the socket itself
//! (see [`super::handle::ClientHandle::send_shared`]); the queue says when that keeps order:
//! only while it is [`OutQueue::idle`].

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use chorus_protocol::codes::{Disconnect, DISCONNECT_SLOW};

use super::control::Control;
use super::Frame;

/// An item for the connection task.
#[derive(Debug)]
pub enum Out {
    Frame(Frame),
    /// A server-side action (API unsubscribe, disconnect, ...), run by the connection task.
    Control(Box<Control>),
}

/// The queue keeps its first item inline: a connection that gets one frame at a time, the
/// common case, never allocates for it, and an idle connection holds no buffer at all.
///
/// In order (`repr(C)`): what [`OutQueue::idle`] reads comes first, so a direct write's check
/// touches one cache line (see `ClientHandle`).
#[derive(Debug, Default)]
#[repr(C)]
pub struct OutQueue {
    /// The connection task took items and may still be writing them.
    busy: bool,
    /// The rest of a frame that a direct write began: it goes before anything else, and is
    /// kept even when the queue closes, so the close frame after it is not garbled. Boxed:
    /// rare, and every connection's handle would carry the 32 bytes.
    unfinished: Option<Box<Bytes>>,
    closed: Option<Disconnect>,
    first: Option<Out>,
    bytes: usize,
    /// When the oldest publication queued now reached the node.
    oldest_publication: Option<Instant>,
    rest: VecDeque<Out>,
}

/// Everything a drain took, in order: `unfinished`, `first`, then `rest`.
#[derive(Debug, Default)]
pub struct Taken {
    /// The rest of a frame already begun on the socket (WebSocket direct writes only).
    pub unfinished: Option<Bytes>,
    pub first: Option<Out>,
    pub rest: VecDeque<Out>,
    /// Set when the queue is closed; the connection must close with this reason.
    pub closed: Option<Disconnect>,
    /// When the oldest publication taken reached the node, if any was taken.
    pub oldest_publication: Option<Instant>,
}

impl Taken {
    pub fn is_empty(&self) -> bool {
        self.unfinished.is_none() && self.first.is_none() && self.rest.is_empty()
    }

    pub fn into_items(self) -> impl Iterator<Item = Out> {
        self.first.into_iter().chain(self.rest)
    }
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
        // `rest` only fills behind `first`, and `take` empties both.
        debug_assert!(self.first.is_some() || self.rest.is_empty());
        if self.first.is_none() {
            self.first = Some(out);
        } else {
            self.rest.push_back(out);
        }
        Pushed::Queued
    }

    /// Notes that the item just queued is a publication that reached the node at `at`.
    pub fn mark_publication(&mut self, at: Instant) {
        self.oldest_publication.get_or_insert(at);
    }

    /// Closes the queue; the first reason wins. Queued items are freed at once.
    pub fn close(&mut self, reason: Disconnect) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.first = None;
            self.rest = VecDeque::new();
            self.bytes = self.unfinished_len();
            self.oldest_publication = None;
        }
    }

    /// Nothing queued, nothing half-written, the connection task not writing, not closed:
    /// a frame written to the socket now cannot overtake anything.
    pub fn idle(&self) -> bool {
        self.first.is_none() && self.unfinished.is_none() && !self.busy && self.closed.is_none()
    }

    /// Holds the rest of a frame a direct write began (only ever into an idle queue).
    pub fn push_unfinished(&mut self, rest: Bytes) {
        debug_assert!(
            self.idle(),
            "a direct write happens only into an idle queue"
        );
        self.bytes += rest.len();
        self.unfinished = Some(Box::new(rest));
    }

    /// Takes the rest of a half-written frame, if any, and marks the task as writing: for the
    /// connection's own control frames (a pong, the close), which must not interleave.
    pub fn take_unfinished(&mut self) -> Option<Bytes> {
        self.busy = true;
        let rest = self.unfinished.take().map(|b| *b);
        self.bytes -= rest.as_ref().map_or(0, Bytes::len);
        rest
    }

    fn unfinished_len(&self) -> usize {
        self.unfinished.as_ref().map_or(0, |b| b.len())
    }

    /// Takes everything queued (freeing the buffer) and says whether the queue is closed.
    /// Until a take finds nothing, the connection task counts as writing.
    pub fn take(&mut self) -> Taken {
        self.bytes = 0;
        let taken = Taken {
            unfinished: self.unfinished.take().map(|b| *b),
            first: self.first.take(),
            rest: std::mem::take(&mut self.rest),
            closed: self.closed,
            oldest_publication: self.oldest_publication.take(),
        };
        self.busy = !taken.is_empty();
        taken
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Out {
        Out::Frame(Frame::from("x".repeat(n)))
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
        let taken = q.take();
        assert_eq!(taken.closed, Some(DISCONNECT_SLOW));
        assert!(
            taken.is_empty(),
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
    fn take_returns_items_in_order_and_leaves_the_queue_reusable() {
        let mut q = OutQueue::default();
        q.push(Out::Frame(Frame::from("a")), 100);
        q.push(Out::Frame(Frame::from("b")), 100);
        q.push(Out::Frame(Frame::from("c")), 100);
        let taken = q.take();
        assert_eq!(taken.closed, None);
        let out: Vec<Out> = taken.into_items().collect();
        q.push(Out::Frame(Frame::from("d")), 100);
        assert_eq!(q.bytes(), 1);
        let after: Vec<Out> = q.take().into_items().collect();
        assert_eq!(after.len(), 1);
        let texts: Vec<&str> = out
            .iter()
            .map(|o| {
                if let Out::Frame(f) = o {
                    std::str::from_utf8(f.as_bytes()).unwrap()
                } else {
                    ""
                }
            })
            .collect();
        assert_eq!(texts, vec!["a", "b", "c"]);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn a_half_written_frame_goes_first_and_survives_a_close() {
        let mut q = OutQueue::default();
        assert!(q.idle());
        q.push_unfinished(Bytes::from_static(b"tail"));
        assert!(!q.idle(), "nothing may overtake the rest of a frame");
        q.push(frame(3), 100);
        q.close(DISCONNECT_SLOW);
        assert_eq!(
            q.bytes(),
            4,
            "the backlog is dropped, the frame's rest is not"
        );
        let taken = q.take();
        assert_eq!(taken.unfinished.as_deref(), Some(&b"tail"[..]));
        assert!(taken.first.is_none());
    }

    #[test]
    fn the_queue_is_idle_only_once_a_take_finds_nothing() {
        let mut q = OutQueue::default();
        q.push(frame(1), 100);
        assert!(!q.idle());
        let taken = q.take();
        assert!(!taken.is_empty());
        assert!(!q.idle(), "the task may still be writing what it took");
        assert!(q.take().is_empty());
        assert!(q.idle());
        assert!(q.take_unfinished().is_none());
        assert!(!q.idle(), "the task is writing a control frame");
        q.take();
        assert!(q.idle());
        q.close(DISCONNECT_SLOW);
        assert!(!q.idle());
    }

    #[test]
    fn a_take_carries_the_oldest_publication_time_once() {
        let mut q = OutQueue::default();
        let first = Instant::now();
        let later = first + std::time::Duration::from_millis(5);
        q.push(Out::Frame(Frame::from("reply")), 100);
        assert_eq!(q.take().oldest_publication, None, "a reply is not timed");
        q.push(Out::Frame(Frame::from("p1")), 100);
        q.mark_publication(first);
        q.push(Out::Frame(Frame::from("p2")), 100);
        q.mark_publication(later);
        assert_eq!(q.take().oldest_publication, Some(first));
        assert_eq!(q.take().oldest_publication, None);
    }
}
