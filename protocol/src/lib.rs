//! Chorus wire types, shared by every service and free of any runtime.
//!
//! - [`frame`]: Centrifugo client protocol v2 (JSON) commands and replies, and the
//!   newline-delimited framing that lets one WebSocket message carry several of them.
//! - [`codes`]: the error and disconnect codes, a written contract with client SDKs.
//! - [`channel`]: channel names: namespaces, private (`$`) and user-limited (`#`) channels.
//! - [`event`]: the chat event envelope carried by the chat-message Kafka topic.
//! - [`state`]: the chat state event carried by the state topic (the API's outbox).
//! - [`secret`]: comparing shared keys in constant time.

pub mod channel;
pub mod codes;
pub mod event;
pub mod frame;
pub mod secret;
pub mod state;

pub use codes::{Disconnect, ProtocolError};
pub use frame::{decode_commands, Command, DecodeError, Method};
