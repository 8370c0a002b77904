//! The shared face of a connected client: its identity and its outbound queue.
//!
//! The hub holds an `Arc<ClientHandle>` per subscription, so this struct is what an idle
//! connection costs besides its socket and task; keep it small.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use chorus_protocol::codes::Disconnect;
use chorus_protocol::Protocol;
use parking_lot::Mutex;
use serde_json::value::RawValue;

use super::queue::{Out, OutQueue, Pushed, Taken};
use super::signal::Signal;
use super::Frame;

/// Actions other parts of the node ask a connection to take.
#[derive(Debug)]
pub enum Control {
    /// Server API subscribe: a server-side subscription.
    Subscribe { channel: String },
    /// Server API unsubscribe.
    Unsubscribe { channel: String },
    /// Server API refresh: a new expiry (unix seconds), or expire now.
    Refresh {
        expire_at: Option<i64>,
        expired: bool,
    },
}

/// Frames held back while a subscription is being set up, so that a publication racing
/// the subscribe reply is neither lost nor duplicated (see `Session::subscribe`).
#[derive(Debug)]
struct SyncBuffer {
    channel: Arc<str>,
    items: Vec<(u64, Option<Frame>)>,
}

/// Who the client turned out to be, known from its connection token.
#[derive(Debug)]
pub struct Identity {
    pub user: Arc<str>,
    pub conn_info: Option<Arc<RawValue>>,
}

static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

pub struct ClientHandle {
    /// Node-local number, cheaper than the id as a map key.
    pub seq: u64,
    pub id: Arc<str>,
    /// JSON or Protobuf, fixed when the connection opens.
    pub protocol: Protocol,
    /// Set once, when the connect command is accepted.
    identity: OnceLock<Identity>,
    queue_max: usize,
    queue: Mutex<OutQueue>,
    signal: Signal,
    syncing: Mutex<Vec<SyncBuffer>>,
}

impl std::fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandle")
            .field("id", &self.id)
            .field("user", &self.user())
            .finish()
    }
}

impl ClientHandle {
    pub fn new(id: Arc<str>, queue_max: usize) -> Self {
        Self::speaking(id, queue_max, Protocol::Json)
    }

    /// A client of `protocol`.
    pub fn speaking(id: Arc<str>, queue_max: usize, protocol: Protocol) -> Self {
        ClientHandle {
            seq: NEXT_SEQ.fetch_add(1, Ordering::Relaxed),
            id,
            protocol,
            identity: OnceLock::new(),
            queue_max,
            queue: Mutex::new(OutQueue::default()),
            signal: Signal::default(),
            syncing: Mutex::new(Vec::new()),
        }
    }

    /// Records who connected; only the first call counts.
    pub fn set_identity(&self, user: Arc<str>, conn_info: Option<Arc<RawValue>>) {
        let _ = self.identity.set(Identity { user, conn_info });
    }

    /// The user id; empty for anonymous clients and before connect.
    pub fn user(&self) -> &str {
        self.identity.get().map_or("", |i| &i.user)
    }

    pub fn user_arc(&self) -> Arc<str> {
        self.identity
            .get()
            .map_or_else(|| Arc::from(""), |i| i.user.clone())
    }

    pub fn conn_info(&self) -> Option<&Arc<RawValue>> {
        self.identity.get().and_then(|i| i.conn_info.as_ref())
    }

    /// Queues a frame; returns false when the client is gone or just overflowed.
    pub fn send(&self, frame: Frame) -> bool {
        self.push(Out::Frame(frame), None)
    }

    /// Queues a publication that reached the node at `reached`; the connection task times
    /// its delivery from then to the socket write.
    pub fn send_publication(&self, frame: Frame, reached: Instant) -> bool {
        self.push(Out::Frame(frame), Some(reached))
    }

    /// Bytes queued for this client now.
    pub fn queued_bytes(&self) -> usize {
        self.queue.lock().bytes()
    }

    pub fn control(&self, c: Control) -> bool {
        self.push(Out::Control(Box::new(c)), None)
    }

    /// Queues `out`; `reached` marks a publication for the delivery-latency histogram.
    fn push(&self, out: Out, reached: Option<Instant>) -> bool {
        let pushed = {
            let mut queue = self.queue.lock();
            let pushed = queue.push(out, self.queue_max);
            if let (Pushed::Queued, Some(at)) = (pushed, reached) {
                queue.mark_publication(at);
            }
            pushed
        };
        if pushed != Pushed::Closed {
            self.signal.notify();
        }
        pushed == Pushed::Queued
    }

    /// Asks the connection to close with `reason`.
    pub fn disconnect(&self, reason: Disconnect) {
        self.queue.lock().close(reason);
        self.signal.notify();
    }

    /// Takes everything queued, as the connection task does before a write.
    pub fn take_queued(&self) -> Taken {
        self.queue.lock().take()
    }

    /// Empties the queue as a connection task would; for benchmarks.
    #[doc(hidden)]
    pub fn drain_for_bench(&self, into: &mut Vec<super::queue::Out>) {
        into.extend(self.take_queued().into_items());
    }

    /// Resolves when something was queued or the queue was closed since the last call.
    pub(crate) async fn notified(&self) {
        self.signal.wait().await
    }

    /// Starts holding back publications of `channel` until [`Self::finish_sync`].
    pub(crate) fn begin_sync(&self, channel: Arc<str>) {
        self.syncing.lock().push(SyncBuffer {
            channel,
            items: Vec::new(),
        });
    }

    /// Delivery for a subscriber still being set up: held back if the setup is running,
    /// queued directly if it just finished.
    /// `frame` is `None` for a publication the subscriber's tags filter skips: held back all
    /// the same, so its offset still counts as had.
    pub(crate) fn send_syncing(&self, channel: &str, offset: u64, frame: Option<Frame>) {
        let mut syncing = self.syncing.lock();
        if let Some(buf) = syncing.iter_mut().find(|b| &*b.channel == channel) {
            buf.items.push((offset, frame));
            return;
        }
        // Still under the sync lock, so it cannot overtake frames finish_sync is flushing.
        if let Some(frame) = frame {
            self.send(frame);
        }
    }

    /// Drops what was held back for a subscription that failed.
    pub(crate) fn abort_sync(&self, channel: &str) {
        self.syncing.lock().retain(|b| &*b.channel != channel);
    }

    /// Queues `reply`, then the held-back frames newer than `top` (all of them when the
    /// channel has no offsets), and stops holding back. Returns the highest offset the
    /// client now has.
    pub(crate) fn finish_sync(&self, channel: &str, reply: Option<Frame>, top: u64) -> u64 {
        let mut syncing = self.syncing.lock();
        let held = match syncing.iter().position(|b| &*b.channel == channel) {
            Some(i) => syncing.swap_remove(i).items,
            None => Vec::new(),
        };
        if let Some(reply) = reply {
            self.send(reply);
        }
        let mut highest = top;
        for (offset, frame) in held {
            if offset == 0 || offset > top {
                highest = highest.max(offset);
                if let Some(frame) = frame {
                    self.send(frame);
                }
            }
        }
        if syncing.is_empty() && syncing.capacity() > 0 {
            *syncing = Vec::new();
        }
        highest
    }
}
