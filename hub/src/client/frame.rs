//! Frames as a connection's protocol encodes them: JSON text or Protobuf bytes.
//!
//! Session code builds replies and pushes through [`reply`], [`error`] and [`push`], which
//! pick the encoding of the client's [`Protocol`]. A publication going to many subscribers
//! is a [`Shared`] frame: encoded at most once per protocol, on first need, and the same
//! bytes queued for every subscriber of that protocol.

use std::cell::OnceCell;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use chorus_protocol::codes::ProtocolError;
use chorus_protocol::frame::Publication;
use chorus_protocol::proto::{ToPush, ToReply};
use chorus_protocol::{frame as json, proto, Protocol};
use serde::Serialize;
use serde_json::value::RawValue;

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

    /// The frame's bytes, for a transport that is not a WebSocket.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Frame::Text(t) => Bytes::from(t),
            Frame::Binary(b) => b,
        }
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

/// Joins frames into the payload of one message: JSON lines are newline-separated, Protobuf
/// replies are length-delimited already and simply follow each other. A lone frame is
/// kept as it is, without a copy.
pub fn join(frames: Vec<Frame>) -> Option<Frame> {
    let mut frames = frames.into_iter();
    let first = frames.next()?;
    let Some(second) = frames.next() else {
        return Some(first);
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
            Frame::Text(Utf8Bytes::from(joined))
        }
        Frame::Binary(b) => {
            let mut joined = Vec::with_capacity(b.len() + second.len() + 256);
            joined.extend_from_slice(&b);
            for f in std::iter::once(second).chain(frames) {
                joined.extend_from_slice(f.as_bytes());
            }
            Frame::Binary(Bytes::from(joined))
        }
    })
}

/// The WebSocket opcode a frame of protocol `p` travels in.
pub fn opcode(p: Protocol) -> u8 {
    match p {
        Protocol::Json => chorus_protocol::websocket::OP_TEXT,
        Protocol::Protobuf => chorus_protocol::websocket::OP_BINARY,
    }
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

/// A copy of `p` whose data is `text` as a JSON string: how a JSON subscriber that
/// negotiated delta compression reads every publication (the document, or a delta).
pub fn as_string_data(p: &Publication, text: &str, delta: bool) -> Publication {
    let quoted = serde_json::to_string(text).expect("invariant: a string serializes");
    Publication {
        data: RawValue::from_string(quoted).expect("invariant: a JSON string is JSON"),
        info: p.info.clone(),
        offset: p.offset,
        tags: p.tags.clone(),
        delta,
    }
}

/// A push for many clients, encoded at most once per protocol.
pub struct Shared<'a> {
    encode: &'a dyn Fn(Protocol) -> Frame,
    json: OnceCell<Frame>,
    protobuf: OnceCell<Frame>,
    /// The same pushes as whole WebSocket frames, header included, for direct writes.
    ws_json: OnceCell<Vec<u8>>,
    ws_protobuf: OnceCell<Vec<u8>>,
    delta: Option<DeltaSource<'a>>,
}

/// The publication behind a [`Shared`] push, for subscribers that negotiated deltas. Each
/// form is made at most once per broadcast: all of them share the channel's previous
/// publication as the base.
struct DeltaSource<'a> {
    channel: &'a str,
    publication: &'a Arc<Publication>,
    /// The channel sends deltas (`delta_publish`); otherwise only whole documents.
    capable: bool,
    json_full: OnceCell<Frame>,
    json_delta: OnceCell<Option<Frame>>,
    protobuf_delta: OnceCell<Option<Frame>>,
}

impl<'a> Shared<'a> {
    pub fn new(encode: &'a dyn Fn(Protocol) -> Frame) -> Self {
        Shared {
            encode,
            json: OnceCell::new(),
            protobuf: OnceCell::new(),
            ws_json: OnceCell::new(),
            ws_protobuf: OnceCell::new(),
            delta: None,
        }
    }

    /// A publication push that subscribers with delta compression can get as a delta.
    pub fn with_delta(
        mut self,
        channel: &'a str,
        publication: &'a Arc<Publication>,
        capable: bool,
    ) -> Self {
        self.delta = Some(DeltaSource {
            channel,
            publication,
            capable,
            json_full: OnceCell::new(),
            json_delta: OnceCell::new(),
            protobuf_delta: OnceCell::new(),
        });
        self
    }

    /// The publication, when this push is one: the next base for deltas.
    pub fn publication(&self) -> Option<&'a Arc<Publication>> {
        self.delta.as_ref().map(|d| d.publication)
    }

    /// The frame for a subscriber that negotiated delta compression: a fossil delta against
    /// `base` (the publication it got last) when the channel sends deltas and one is smaller,
    /// else the whole document (for JSON, as a string, which is how such a subscriber reads
    /// data).
    pub fn get_delta(&self, p: Protocol, base: Option<&Publication>) -> Frame {
        let Some(d) = &self.delta else {
            return self.get(p);
        };
        if let (true, Some(base)) = (d.capable, base) {
            let cell = match p {
                Protocol::Json => &d.json_delta,
                Protocol::Protobuf => &d.protobuf_delta,
            };
            if let Some(f) = cell.get_or_init(|| delta_frame(p, d, base)) {
                return f.clone();
            }
        }
        match p {
            Protocol::Json => d
                .json_full
                .get_or_init(|| {
                    let whole = as_string_data(d.publication, d.publication.data.get(), false);
                    push(p, d.channel, "pub", &whole)
                })
                .clone(),
            Protocol::Protobuf => self.get(p),
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

    /// The frame for a WebSocket client of protocol `p`, framed: written to every such
    /// subscriber's socket as it is. Made at most once per protocol.
    pub fn websocket(&self, p: Protocol) -> &[u8] {
        let cell = match p {
            Protocol::Json => &self.ws_json,
            Protocol::Protobuf => &self.ws_protobuf,
        };
        cell.get_or_init(|| chorus_protocol::websocket::frame(opcode(p), self.get(p).as_bytes()))
    }

    /// How many encodings were made (whole documents), for tests.
    pub fn encodings(&self) -> usize {
        usize::from(self.json.get().is_some()) + usize::from(self.protobuf.get().is_some())
    }
}

/// `cur` as a fossil delta against `base`, or `None` when that is not smaller, or (JSON,
/// where a delta travels as a string) not UTF-8.
fn delta_frame(p: Protocol, d: &DeltaSource<'_>, base: &Publication) -> Option<Frame> {
    let cur = d.publication.data.get().as_bytes();
    let delta = chorus_protocol::fossil::delta(base.data.get().as_bytes(), cur);
    if delta.len() >= cur.len() {
        return None;
    }
    Some(match p {
        Protocol::Json => {
            let text = std::str::from_utf8(&delta).ok()?;
            push(
                p,
                d.channel,
                "pub",
                &as_string_data(d.publication, text, true),
            )
        }
        Protocol::Protobuf => Frame::Binary(
            proto::encode_publication_push(d.channel, d.publication, Bytes::from(delta), true)
                .into(),
        ),
    })
}
