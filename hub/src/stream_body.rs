//! Response bodies that carry a session's frames over plain HTTP, for the transports that are
//! not WebSockets: SSE events (`data: <json>\n\n`), newline-delimited JSON, or Protobuf
//! replies one after another (already length-delimited). The unidirectional transports
//! ([`crate::uni_transport`]) and the emulated ones ([`crate::emulation_transport`]) differ
//! only in what their frames say, not in how a response carries them.

use std::convert::Infallible;

use axum::body::Body;
use bytes::Bytes;
use chorus_protocol::codes::Disconnect;
use tokio::sync::mpsc;

use crate::client::Outbound;

/// A GET's connect request, in `cf_connect` (a browser's `EventSource` cannot POST).
#[derive(serde::Deserialize)]
pub struct ConnectQuery {
    #[serde(default)]
    pub cf_connect: String,
}

/// How a response frames one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `data: <json>\n\n`
    Sse,
    /// `<json>\n`
    Lines,
    /// Length-delimited Protobuf, as it is.
    Delimited,
}

impl Framing {
    pub fn content_type(self) -> &'static str {
        match self {
            Framing::Sse => "text/event-stream",
            Framing::Lines => "application/json",
            Framing::Delimited => "application/octet-stream",
        }
    }
}

/// One body chunk holding `frames`.
pub fn encode(framing: Framing, frames: Vec<Bytes>) -> Bytes {
    if framing == Framing::Delimited && frames.len() == 1 {
        return frames.into_iter().next().unwrap_or_default();
    }
    let mut out = Vec::with_capacity(frames.iter().map(|l| l.len() + 8).sum());
    for f in frames {
        match framing {
            Framing::Sse => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&f);
                out.extend_from_slice(b"\n\n");
            }
            Framing::Lines => {
                out.extend_from_slice(&f);
                out.push(b'\n');
            }
            Framing::Delimited => out.extend_from_slice(&f),
        }
    }
    Bytes::from(out)
}

/// A body streaming what the session hands over until it ends; `last` is the frame that
/// tells the client why the server ended it (a disconnect push), the body's final chunk.
pub fn body(
    framing: Framing,
    rx: mpsc::Receiver<Outbound>,
    last: impl Fn(Disconnect) -> Bytes + Send + Sync + 'static,
) -> Body {
    let last = std::sync::Arc::new(last);
    let chunks = futures_util::stream::unfold(Some(rx), move |rx| {
        let last = last.clone();
        async move {
            let mut rx = rx?;
            let chunk = match rx.recv().await? {
                Outbound::Frames(frames) => (encode(framing, frames), Some(rx)),
                // The disconnect push is the last thing the body carries.
                Outbound::Close(d) => (encode(framing, vec![last(d)]), None),
            };
            Some((Ok::<_, Infallible>(chunk.0), chunk.1))
        }
    });
    Body::from_stream(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_framing_frames_each_frame() {
        let frames = || vec![Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"{}")];
        assert_eq!(
            &encode(Framing::Sse, frames())[..],
            b"data: {\"a\":1}\n\ndata: {}\n\n"
        );
        assert_eq!(&encode(Framing::Lines, frames())[..], b"{\"a\":1}\n{}\n");
        assert_eq!(&encode(Framing::Delimited, frames())[..], b"{\"a\":1}{}");
    }
}
