//! One WebSocket client.
//!
//! - [`queue`]: the bounded outbound queue; a client that cannot keep up is disconnected.
//! - [`handle`]: the part of a client other tasks see (hub fan-out, server API).
//! - [`session`]: protocol state and command handling (connect, subscribe, publish, ...).
//! - [`connection`]: the one task per connection that reads, writes, pings and times out.

pub mod connection;
pub mod handle;
pub mod queue;
pub mod session;

pub use handle::{ClientHandle, Control};
