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

use super::control::Control;
use super::frame::Shared;
use super::queue::{Out, OutQueue, Pushed, Taken};
use super::signal::Signal;
use super::Frame;
use crate::socket::{Socket, Written};

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

/// The queue, and the socket the fan-out may write to past it, under one lock: whether a
/// direct write keeps order is decided, and the write made, while no one can queue.
#[derive(Default)]
#[repr(C)] // the socket beside the queue's state that `idle` reads: see ClientHandle
struct Outbound {
    /// A WebSocket connection's socket, while its task runs.
    direct: Option<Arc<Socket>>,
    queue: OutQueue,
}

/// Laid out in order (`repr(C)`), the fields a fan-out touches per delivery first: the
/// protocol, the lock, the socket and the queue's state share the handle's first cache lines.
/// A broadcast to 10,000 subscribers misses the cache on every handle, so each line counts.
#[repr(C)]
pub struct ClientHandle {
    /// JSON or Protobuf, fixed when the connection opens.
    pub protocol: Protocol,
    out: Mutex<Outbound>,
    queue_max: usize,
    signal: Signal,
    /// Node-local number, cheaper than the id as a map key.
    pub seq: u64,
    pub id: Arc<str>,
    /// Set once, when the connect command is accepted.
    identity: OnceLock<Identity>,
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
            out: Mutex::new(Outbound::default()),
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

    /// Delivers a publication to a subscriber of the shared push `frames`: written to the
    /// socket right here when the connection has a direct socket and nothing is queued or
    /// being written before it (no task woken, no copy, one syscall), else queued. `reached`
    /// times the delivery into `delivered` (direct) or for the connection task (queued).
    pub fn send_shared(
        &self,
        frames: &Shared,
        reached: Instant,
        delivered: Option<&prometheus::local::LocalHistogram>,
    ) -> bool {
        let mut guard = self.out.lock();
        let out = &mut *guard;
        if let (Some(socket), true) = (&out.direct, out.queue.idle()) {
            let bytes = frames.websocket(self.protocol);
            match socket.write_now(bytes) {
                Written::All => {
                    drop(guard);
                    if let Some(h) = delivered {
                        h.observe(reached.elapsed().as_secs_f64());
                    }
                    return true;
                }
                Written::Part(n) => {
                    // The socket took part of it: the task writes the rest before anything.
                    out.queue
                        .push_unfinished(bytes::Bytes::copy_from_slice(&bytes[n..]));
                    out.queue.mark_publication(reached);
                    drop(guard);
                    self.signal.notify();
                    return true;
                }
                // Full, or failed: the queue and the task deal with it as with any frame.
                Written::Nothing => {}
            }
        }
        self.push_locked(guard, Out::Frame(frames.get(self.protocol)), Some(reached))
    }

    /// Lets the fan-out write publications straight to `socket` (see [`Self::send_shared`]).
    pub(crate) fn write_through(&self, socket: Arc<Socket>) {
        self.out.lock().direct = Some(socket);
    }

    /// Ends direct writes and takes the rest of a half-written frame, if any: what the task
    /// must write before its close frame. The task counts as writing from here on.
    pub(crate) fn stop_write_through(&self) -> Option<bytes::Bytes> {
        let mut out = self.out.lock();
        out.direct = None;
        out.queue.take_unfinished()
    }

    /// For a control frame the task writes itself (a pong): holds direct writes off and
    /// returns what must go first. [`Self::take_queued`] lets them resume.
    pub(crate) fn hold_direct(&self) -> Option<bytes::Bytes> {
        self.out.lock().queue.take_unfinished()
    }

    /// Bytes queued for this client now.
    pub fn queued_bytes(&self) -> usize {
        self.out.lock().queue.bytes()
    }

    pub fn control(&self, c: Control) -> bool {
        self.push(Out::Control(Box::new(c)), None)
    }

    /// Queues `out`; `reached` marks a publication for the delivery-latency histogram.
    fn push(&self, out: Out, reached: Option<Instant>) -> bool {
        self.push_locked(self.out.lock(), out, reached)
    }

    fn push_locked(
        &self,
        mut guard: parking_lot::MutexGuard<'_, Outbound>,
        out: Out,
        reached: Option<Instant>,
    ) -> bool {
        let queue = &mut guard.queue;
        let pushed = queue.push(out, self.queue_max);
        if let (Pushed::Queued, Some(at)) = (pushed, reached) {
            queue.mark_publication(at);
        }
        drop(guard);
        if pushed != Pushed::Closed {
            self.signal.notify();
        }
        pushed == Pushed::Queued
    }

    /// Asks the connection to close with `reason`.
    pub fn disconnect(&self, reason: Disconnect) {
        self.out.lock().queue.close(reason);
        self.signal.notify();
    }

    /// Takes everything queued, as the connection task does before a write.
    pub fn take_queued(&self) -> Taken {
        self.out.lock().queue.take()
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

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A connected pair on loopback: the hub's side as a [`Socket`] with a tiny send buffer
    /// (so a large frame can only go part-way), and the client's side, blocking.
    async fn pair() -> (Arc<Socket>, std::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        socket2::SockRef::from(&client)
            .set_recv_buffer_size(4096)
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        // Let the reactor see the socket writable before the first direct write.
        server.writable().await.unwrap();
        let socket = Arc::new(Socket::new(server, Arc::new(AtomicUsize::new(0))));
        (socket, client)
    }

    #[tokio::test]
    async fn a_direct_write_that_goes_part_way_leaves_its_rest_first_in_line() {
        let (socket, mut client) = pair().await;
        let handle = ClientHandle::new("c".into(), 1 << 20);
        handle.write_through(socket);
        let big = "x".repeat(200_000);
        let encode = |_| Frame::from(big.clone());
        let first = Shared::new(&encode);
        assert!(handle.send_shared(&first, Instant::now(), None));
        let whole = first.websocket(Protocol::Json).to_vec();

        // The socket took part of it; the rest waits for the connection task.
        let second = Shared::new(&encode);
        assert!(handle.send_shared(&second, Instant::now(), None));
        let taken = handle.take_queued();
        let rest = taken
            .unfinished
            .clone()
            .expect("the rest of the first frame");
        assert!(!rest.is_empty() && rest.len() < whole.len());
        assert!(
            matches!(&taken.first, Some(Out::Frame(f)) if f.len() == 200_000),
            "the second publication was queued behind it, not written past it"
        );

        // What reached the client is exactly the frame's start.
        let sent = whole.len() - rest.len();
        let mut got = vec![0u8; sent];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, whole[..sent]);
        assert_eq!(&rest[..], &whole[sent..]);
    }

    #[tokio::test]
    async fn the_rest_of_a_frame_outlives_a_slow_close_and_direct_writes_stop() {
        let (socket, _client) = pair().await;
        let handle = ClientHandle::new("c".into(), 1 << 20);
        handle.write_through(socket);
        let big = "x".repeat(200_000);
        let encode = |_| Frame::from(big.clone());
        assert!(handle.send_shared(&Shared::new(&encode), Instant::now(), None));
        handle.disconnect(chorus_protocol::codes::DISCONNECT_SLOW);
        let rest = handle
            .stop_write_through()
            .expect("the rest of the frame, for the task to finish before the close frame");
        assert!(!rest.is_empty());
        // From now on nothing is written past the task, and nothing queues either.
        assert!(!handle.send_shared(&Shared::new(&encode), Instant::now(), None));
        assert!(handle.stop_write_through().is_none());
    }
}
