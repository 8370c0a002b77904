//! The WebSocket transport, framed by the hub itself on the socket the upgrade came in on.
//!
//! axum answers the handshake; then its (tungstenite's) stream is dropped and the connection
//! task reads and writes the shared [`Socket`] directly, which buys two things. An idle
//! connection holds no read or write buffer: bytes are read onto the stack, and only a frame
//! still arriving is kept. And the fan-out can write a publication, framed once for all
//! subscribers, straight to the socket from whatever task delivers it (one syscall, no
//! wake-up of the connection task), whenever the connection has nothing queued or being
//! written before it; see [`super::handle::ClientHandle::send_shared`]. A full socket or a
//! busy connection falls back to the queue and the task, with the slow-client rules as ever.

use std::future::Future;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;
use chorus_protocol::codes::{self, Disconnect};
use chorus_protocol::websocket::{
    self as ws, FrameError, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};
use chorus_protocol::Protocol;
use tokio::time::timeout;

use super::connection::{serve, Incoming, Setup, Wire};
use super::frame::{self, Frame};
use crate::node::Node;
use crate::socket::Socket;

/// The most one read takes; `websocket.read_buffer_size` can only lower it. On the stack,
/// so it costs an idle connection nothing.
const MAX_READ: usize = 4096;

/// Messages per `writev`: two slices each, well inside the kernel's 1024.
const MESSAGES_PER_WRITE: usize = 256;

/// Serves one upgraded WebSocket until it closes. Not an async block of its own: one would
/// keep its arguments for the connection's lifetime beside `serve`'s.
pub fn serve_websocket(
    node: Arc<Node>,
    socket: Arc<Socket>,
    protocol: Protocol,
    headers: Option<Arc<HeaderMap>>,
) -> impl Future<Output = ()> + Send {
    let cfg = &node.config.websocket;
    let client = &node.config.client;
    let wire = WebSocketWire {
        socket: socket.clone(),
        partial: Vec::new(),
        message: None,
        client_close: None,
        limit: cfg.message_size_limit,
        read_size: cfg.read_buffer_size.clamp(1, MAX_READ),
        per_message: usize::try_from(client.max_messages_in_frame).unwrap_or(usize::MAX),
        write_timeout: cfg.write_timeout.0,
    };
    // With a write delay every publication waits in the queue to be batched.
    let setup = Setup {
        direct: client.write_delay.is_zero().then_some(socket),
        ..Setup::default()
    };
    serve(node, wire, protocol, headers, setup)
}

struct WebSocketWire {
    socket: Arc<Socket>,
    /// Bytes of frames not yet handed on: a frame still arriving, and any behind it. Empty
    /// and unallocated while the client is quiet.
    partial: Vec<u8>,
    /// A fragmented message being put together: its opcode and its payload so far. Boxed,
    /// like `client_close`: rare, and every idle connection would carry the space.
    message: Option<Box<(u8, Vec<u8>)>>,
    /// The close frame's payload, once the client sent one: echoed on the way out.
    client_close: Option<Box<[u8]>>,
    limit: usize,
    read_size: usize,
    /// `client.max_messages_in_frame`.
    per_message: usize,
    write_timeout: Duration,
}

impl WebSocketWire {
    /// The next complete message or control frame already read, if any.
    fn next(&mut self, protocol: Protocol) -> Option<Incoming> {
        loop {
            let f = match ws::parse_client_frame(&self.partial, self.limit) {
                Ok(Some(f)) if self.partial.len() >= f.frame_len() => f,
                Ok(_) => {
                    if self.partial.is_empty() {
                        self.partial = Vec::new();
                    }
                    return None;
                }
                Err(FrameError::TooBig(_)) => {
                    return Some(Incoming::Refuse(codes::DISCONNECT_MESSAGE_TOO_BIG))
                }
                // Unmasked, reserved bits, unknown opcodes: not a WebSocket client.
                Err(_) => return Some(Incoming::Gone),
            };
            let mut payload = self.partial[f.header_len..f.frame_len()].to_vec();
            ws::unmask(&mut payload, f.mask);
            self.partial.drain(..f.frame_len());
            match f.opcode {
                OP_TEXT | OP_BINARY if self.message.is_some() => return Some(Incoming::Gone),
                OP_TEXT | OP_BINARY if !f.fin => self.message = Some(Box::new((f.opcode, payload))),
                OP_TEXT | OP_BINARY => return Some(data(f.opcode, payload, protocol)),
                OP_CONTINUATION => {
                    let Some(mut started) = self.message.take() else {
                        return Some(Incoming::Gone);
                    };
                    let (_, so_far) = &mut *started;
                    if so_far.len() + payload.len() > self.limit {
                        return Some(Incoming::Refuse(codes::DISCONNECT_MESSAGE_TOO_BIG));
                    }
                    so_far.extend_from_slice(&payload);
                    if f.fin {
                        let (opcode, so_far) = *started;
                        return Some(data(opcode, so_far, protocol));
                    }
                    self.message = Some(started);
                }
                OP_PING => return Some(Incoming::Ping(Bytes::from(payload))),
                OP_PONG => return Some(Incoming::Ignore),
                _ => {
                    debug_assert_eq!(f.opcode, OP_CLOSE);
                    self.client_close = Some(payload.into_boxed_slice());
                    return Some(Incoming::Gone);
                }
            }
        }
    }

    async fn write_all(&self, bufs: &mut [IoSlice<'_>]) -> Result<(), Disconnect> {
        match timeout(self.write_timeout, self.socket.write_all_vectored(bufs)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(codes::DISCONNECT_WRITE_ERROR),
        }
    }
}

fn message_opcode(m: &Frame) -> u8 {
    match m {
        Frame::Text(_) => OP_TEXT,
        Frame::Binary(_) => OP_BINARY,
    }
}

/// A whole data message, checked against the connection's protocol.
fn data(opcode: u8, payload: Vec<u8>, protocol: Protocol) -> Incoming {
    match (opcode, protocol) {
        (OP_TEXT, Protocol::Json) | (OP_BINARY, Protocol::Protobuf) => {
            Incoming::Data(Bytes::from(payload))
        }
        // Text on a Protobuf connection or binary on a JSON one: a client bug.
        _ => Incoming::Refuse(codes::DISCONNECT_BAD_REQUEST),
    }
}

impl Wire for WebSocketWire {
    async fn recv(&mut self, protocol: Protocol) -> Incoming {
        // Cancel-safe, as the connection's select needs: every byte read is in `self`
        // before the next await.
        loop {
            if let Some(incoming) = self.next(protocol) {
                return incoming;
            }
            if self.socket.readable().await.is_err() {
                return Incoming::Gone;
            }
            let mut buf = [0u8; MAX_READ];
            match self.socket.read_now(&mut buf[..self.read_size]) {
                Ok(0) => return Incoming::Gone,
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Incoming::Gone,
            }
        }
    }

    async fn write(&mut self, frames: Vec<Frame>) -> Result<(), Disconnect> {
        if frames.len() <= self.per_message {
            // The common case: one message, its header and payload in one writev.
            let Some(message) = frame::join(frames) else {
                return Ok(());
            };
            let (header, used) = ws::header(message_opcode(&message), message.len());
            return self
                .write_all(&mut [
                    IoSlice::new(&header[..used]),
                    IoSlice::new(message.as_bytes()),
                ])
                .await;
        }
        // Up to `per_message` frames in each message; every message of a flush leaves in one
        // writev, header and payload slices side by side, nothing copied but the joins.
        let mut messages = Vec::new();
        let mut frames = frames.into_iter().peekable();
        while frames.peek().is_some() {
            let batch: Vec<Frame> = frames.by_ref().take(self.per_message.max(1)).collect();
            if let Some(joined) = frame::join(batch) {
                messages.push(joined);
            }
        }
        for group in messages.chunks(MESSAGES_PER_WRITE) {
            let headers: Vec<_> = group
                .iter()
                .map(|m| ws::header(message_opcode(m), m.len()))
                .collect();
            let mut slices: Vec<IoSlice<'_>> = headers
                .iter()
                .zip(group)
                .flat_map(|((h, used), m)| [IoSlice::new(&h[..*used]), IoSlice::new(m.as_bytes())])
                .collect();
            self.write_all(&mut slices).await?;
        }
        Ok(())
    }

    async fn write_framed(&mut self, bytes: Bytes) -> Result<(), Disconnect> {
        self.write_all(&mut [IoSlice::new(&bytes)]).await
    }

    async fn pong(&mut self, payload: Bytes) -> Result<(), Disconnect> {
        let pong = ws::frame(OP_PONG, &payload);
        self.write_all(&mut [IoSlice::new(&pong)]).await
    }

    async fn close(&mut self, d: Disconnect) {
        let close = ws::close_frame(d.code, d.reason);
        let _ = self.write_all(&mut [IoSlice::new(&close)]).await;
    }

    async fn goodbye(&mut self) {
        // The client closed: echo its close frame (RFC 6455 §5.5.1), code and all.
        if let Some(payload) = self.client_close.take() {
            let close = ws::frame(OP_CLOSE, payload.get(..2).unwrap_or_default());
            let _ = self.write_all(&mut [IoSlice::new(&close)]).await;
        }
    }
}
