//! One WebSocket client.
//!
//! - [`frame`]: replies and pushes encoded in the client's protocol (JSON or Protobuf).
//! - [`queue`]: the bounded outbound queue; a client that cannot keep up is disconnected.
//! - [`signal`]: wakes the connection task when its queue fills (a flag and a waker).
//! - [`roster`]: every open connection, so shutdown reaches each one.
//! - [`handle`]: the part of a client other tasks see (hub fan-out, server API).
//! - [`session`]: protocol state and command handling (connect, publish, history, ...).
//! - [`proxied`]: the session's calls to the backend (connect, refresh, sub_refresh,
//!   publish and rpc proxies).
//! - [`subscribe`]: the subscribe pipeline: authorize, hold back, position and recover, release.
//! - [`connection`]: the one task per connection that reads, writes, pings and times out.
//! - [`uni`]: the session of a unidirectional connection (uni_websocket, uni_sse,
//!   uni_http_stream): one connect request, then bare pushes.

pub mod connection;
pub mod frame;
pub mod handle;
pub mod proxied;
pub mod queue;
pub mod roster;
pub mod session;
pub mod signal;
pub mod subscribe;
pub mod uni;

pub use frame::Frame;
pub use handle::{ClientHandle, Control};
