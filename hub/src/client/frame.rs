//! Frames as a connection's protocol encodes them: JSON text or Protobuf bytes.
//!
//! Session code builds replies and pushes through [`reply`], [`error`] and [`push`], which
//! pick the encoding of the client's [`Protocol`]. A publication going to many subscribers
//! is a [`Shared`] frame: encoded at most once per protocol, on first need, and the same
//! bytes queued for every subscriber of that protocol.

use std::cell::OnceCell;

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use chorus_protocol::codes::ProtocolError;
use chorus_protocol::proto::{ToPush, ToReply};
use chorus_protocol::{frame as json, proto, Protocol};
use serde::Serialize;

/// One encoded reply or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Frame {
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame's bytes, as a test reads them.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Frame::Text(t) => t.as_bytes(),
            Frame::Binary(b) => b,
        }
    }
}

impl From<String> for Frame {
    fn from(s: String) -> Self {
        Frame::Text(Utf8Bytes::from(s))
    }
}

impl From<&'static str> for Frame {
    fn from(s: &'static str) -> Self {
        Frame::Text(Utf8Bytes::from_static(s))
    }
}

/// Joins frames into one WebSocket message: JSON lines are newline-separated, Protobuf
/// replies are length-delimited already and simply follow each other. A lone frame is
/// sent as it is, without a copy.
pub fn message(frames: Vec<Frame>) -> Option<Message> {
    let mut frames = frames.into_iter();
    let first = frames.next()?;
    let Some(second) = frames.next() else {
        return Some(match first {
            Frame::Text(t) => Message::Text(t),
            Frame::Binary(b) => Message::Binary(b),
        });
    };
    Some(match first {
        Frame::Text(t) => {
            let mut joined = String::with_capacity(t.len() + second.len() + 256);
            joined.push_str(t.as_str());
            for f in std::iter::once(second).chain(frames) {
                // One connection, one protocol: every frame here is text.
                if let Frame::Text(t) = f {
                    joined.push('\n');
                    joined.push_str(t.as_str());
                }
            }
            Message::Text(Utf8Bytes::from(joined))
        }
        Frame::Binary(b) => {
            let mut joined = Vec::with_capacity(b.len() + second.len() + 256);
            joined.extend_from_slice(&b);
            for f in std::iter::once(second).chain(frames) {
                joined.extend_from_slice(f.as_bytes());
            }
            Message::Binary(Bytes::from(joined))
        }
    })
}

pub fn reply<T: Serialize + ToReply>(p: Protocol, id: u32, method: &str, result: &T) -> Frame {
    match p {
        Protocol::Json => json::encode_reply(id, method, result).into(),
        Protocol::Protobuf => Frame::Binary(proto::encode_reply(id, method, result).into()),
    }
}

pub fn error(p: Protocol, id: u32, e: &ProtocolError) -> Frame {
    match p {
        Protocol::Json => json::encode_error(id, e).into(),
        Protocol::Protobuf => Frame::Binary(proto::encode_error(id, e).into()),
    }
}

pub fn push<T: Serialize + ToPush>(p: Protocol, channel: &str, kind: &str, body: &T) -> Frame {
    match p {
        Protocol::Json => json::encode_push(channel, kind, body).into(),
        Protocol::Protobuf => Frame::Binary(proto::encode_push(channel, kind, body).into()),
    }
}

/// The server ping.
pub fn ping(p: Protocol) -> Frame {
    match p {
        Protocol::Json => Frame::Text(Utf8Bytes::from_static(json::PING_FRAME)),
        Protocol::Protobuf => Frame::Binary(Bytes::from_static(proto::PING_FRAME)),
    }
}

/// A push for many clients, encoded at most once per protocol.
pub struct Shared<'a> {
    encode: &'a dyn Fn(Protocol) -> Frame,
    json: OnceCell<Frame>,
    protobuf: OnceCell<Frame>,
}

impl<'a> Shared<'a> {
    pub fn new(encode: &'a dyn Fn(Protocol) -> Frame) -> Self {
        Shared {
            encode,
            json: OnceCell::new(),
            protobuf: OnceCell::new(),
        }
    }

    /// The frame for a client of protocol `p`: a cheap clone of the shared bytes.
    pub fn get(&self, p: Protocol) -> Frame {
        let cell = match p {
            Protocol::Json => &self.json,
            Protocol::Protobuf => &self.protobuf,
        };
        cell.get_or_init(|| (self.encode)(p)).clone()
    }

    /// How many encodings were made, for tests.
    pub fn encodings(&self) -> usize {
        usize::from(self.json.get().is_some()) + usize::from(self.protobuf.get().is_some())
    }
}
