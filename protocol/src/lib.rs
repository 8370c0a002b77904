//! Chorus wire types, shared by every service and free of any runtime.
//!
//! - [`frame`]: Centrifugo client protocol v2 (JSON) commands and replies, and the
//!   newline-delimited framing that lets one WebSocket message carry several of them.
//! - [`proto`]: the same protocol in Protobuf (`centrifuge-protobuf`), decoding into the
//!   same commands and encoding the same results.
//! - [`fossil`]: fossil deltas (delta compression), and a decoder safe on untrusted input.
//! - [`codes`]: the error and disconnect codes, a written contract with client SDKs.
//! - [`channel`]: channel names: namespaces, private (`$`) and user-limited (`#`) channels.
//! - [`event`]: the chat event envelope carried by the chat-message Kafka topic.
//! - [`state`]: the chat state event carried by the state topic (the API's outbox).
//! - [`secret`]: comparing shared keys in constant time.
//! - [`websocket`]: WebSocket framing for servers that write their own frames (the hub's
//!   client connections, the load harness's floor server).

pub mod channel;
pub mod codes;
pub mod event;
pub mod filter;
pub mod fossil;
pub mod frame;
pub mod proto;
pub mod secret;
pub mod state;
pub mod websocket;

pub use codes::{Disconnect, ProtocolError};
pub use frame::{decode_commands, Command, DecodeError, Method};

/// The client protocol a connection speaks, chosen by its WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// JSON text, newline-delimited (no subprotocol).
    #[default]
    Json,
    /// Binary, varint-length-delimited Protobuf (`centrifuge-protobuf`).
    Protobuf,
}

impl Protocol {
    /// The WebSocket subprotocol that asks for Protobuf.
    pub const PROTOBUF_SUBPROTOCOL: &'static str = "centrifuge-protobuf";

    /// Decodes every command in one message of this protocol.
    pub fn decode_commands(self, frame: &[u8]) -> Result<Vec<Command>, DecodeError> {
        match self {
            Protocol::Json => frame::decode_commands(frame),
            Protocol::Protobuf => proto::decode_commands(frame),
        }
    }
}
