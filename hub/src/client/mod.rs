//! One WebSocket client.
//!
//! - [`frame`]: replies and pushes encoded in the client's protocol (JSON or Protobuf).
//! - [`queue`]: the bounded outbound queue; a client that cannot keep up is disconnected.
//! - [`signal`]: wakes the connection task when its queue fills (a flag and a waker).
//! - [`roster`]: every open connection, so shutdown reaches each one.
//! - [`handle`]: the part of a client other tasks see (hub fan-out, server API);
//!   [`control`]: the actions they queue for its task (server-side subscribe, unsubscribe,
//!   refresh).
//! - [`session`]: protocol state and command handling (connect, publish, history, ...).
//! - [`proxied`]: the session's calls to the backend (connect, refresh, sub_refresh,
//!   publish and rpc proxies).
//! - [`subscribe`]: the subscribe pipeline: authorize, hold back, position and recover, release.
//! - [`connection`]: the one task per connection that reads, writes, pings and times out.
//! - [`websocket`]: the WebSocket transport, framed by the hub on the shared socket, with
//!   the fan-out's direct writes.
//! - [`uni`]: the session of a unidirectional connection (uni_websocket, uni_sse,
//!   uni_http_stream): one connect request, then bare pushes.
//! - [`emulated`]: a bidirectional connection over HTTP-streaming or SSE, its commands
//!   arriving as `/emulation` requests, on this node or routed from another; [`inbox`]: where
//!   those requests are handed to a session.

pub mod connection;
pub mod control;
pub mod emulated;
pub mod frame;
pub mod handle;
pub mod inbox;
pub mod proxied;
pub mod queue;
pub mod roster;
pub mod session;
pub mod signal;
pub mod subscribe;
pub mod uni;
pub mod websocket;

pub use control::Control;
pub use frame::Frame;
pub use handle::ClientHandle;

/// What a session served over an HTTP response (or a unidirectional WebSocket) hands the
/// task writing it.
#[derive(Debug)]
pub enum Outbound {
    /// Encoded frames, in order.
    Frames(Vec<bytes::Bytes>),
    /// The session ended; the transport tells the client why (a disconnect push or a close
    /// frame) and ends.
    Close(chorus_protocol::codes::Disconnect),
}
