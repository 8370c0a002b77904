//! The task that owns one bidirectional connection: a WebSocket, or an emulated one (an
//! HTTP-streaming or SSE response for the server's side, `/emulation` requests for the
//! client's, see [`super::emulated`]).
//!
//! One task per connection, never one per subscription. It waits on three things: the
//! client's commands, the client's outbound queue (which is also how shutdown and
//! server-side disconnects reach it, see [`super::roster`]) and a single timer (ping, pong
//! deadline, stale connect). Queued frames are written together (one WebSocket message of
//! newline-separated JSON, or Protobuf replies one after another), as the protocol allows;
//! that is what keeps a busy fan-out cheap in syscalls. Command handling is boxed so the
//! idle task stays small. What differs between transports is behind [`Wire`]; the WebSocket
//! one, which also lets the fan-out write past the queue, is [`super::websocket`].

use std::future::Future;
use std::sync::Arc;

use axum::http::HeaderMap;
use bytes::Bytes;
use chorus_protocol::codes::{self, Disconnect};
use chorus_protocol::Protocol;
use tokio::time::{sleep_until, Instant};

use super::frame::{self, Frame};
use super::queue::Out;
use super::session::Session;
use super::ClientHandle;
use crate::node::Node;
use crate::socket::Socket;

/// What the client sent, as the connection task sees it.
pub enum Incoming {
    /// One transport message: one or more commands in the connection's protocol.
    Data(Bytes),
    /// Nothing for the session (a WebSocket pong, say).
    Ignore,
    /// A WebSocket ping, to be answered with a pong carrying `payload`.
    Ping(Bytes),
    /// The client went away.
    Gone,
    /// The transport refuses the client (an oversized or mistyped message).
    Refuse(Disconnect),
}

/// How a bidirectional transport reads commands and writes frames.
pub trait Wire: Send {
    fn recv(&mut self, protocol: Protocol) -> impl Future<Output = Incoming> + Send;
    /// Writes frames in order, within `websocket.write_timeout`.
    fn write(&mut self, frames: Vec<Frame>) -> impl Future<Output = Result<(), Disconnect>> + Send;
    /// Tells the client why the server ends the connection, as the transport does.
    fn close(&mut self, d: Disconnect) -> impl Future<Output = ()> + Send;
    /// Writes bytes already framed for the transport: the rest of a frame the fan-out began
    /// on the socket. Only a transport that gives [`Setup::direct`] ever gets any.
    fn write_framed(
        &mut self,
        bytes: Bytes,
    ) -> impl Future<Output = Result<(), Disconnect>> + Send {
        debug_assert!(bytes.is_empty(), "no direct writes on this transport");
        async { Ok(()) }
    }
    /// Answers a [`Incoming::Ping`].
    fn pong(&mut self, payload: Bytes) -> impl Future<Output = Result<(), Disconnect>> + Send {
        drop(payload);
        async { Ok(()) }
    }
    /// The client went away: whatever the transport owes it (a WebSocket close echo).
    fn goodbye(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// What a transport fixes about a session before its first command.
#[derive(Default)]
pub struct Setup {
    /// What proxy requests call the transport; empty: `websocket`.
    pub transport: &'static str,
    /// The emulation session id the connect result carries (emulated transports only).
    pub emulation: Option<Arc<str>>,
    /// The socket the fan-out may write publications to directly (WebSocket only).
    pub direct: Option<Arc<Socket>>,
}

/// Serves one connection until it closes.
///
/// A plain function returning an `async move` block rather than an `async fn`: an async fn
/// keeps its by-value arguments as upvars *and* as locals, so the wire would sit in every
/// idle connection's task twice. And what needs no await (the handle and the session) is
/// set up before the block, so the block keeps only what it uses, not the
/// arguments that went into them as well.
pub fn serve<W: Wire>(
    node: Arc<Node>,
    mut wire: W,
    protocol: Protocol,
    headers: Option<Arc<HeaderMap>>,
    setup: Setup,
) -> impl Future<Output = ()> + Send {
    let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    let queue_max = node.config.client.queue_max_size;
    let handle = Arc::new(ClientHandle::speaking(id, queue_max, protocol));
    let mut session = Session::new(node.clone(), handle.clone());
    session.headers = headers;
    if !setup.transport.is_empty() {
        session.transport = setup.transport;
    }
    session.emulation = setup.emulation;
    let direct = setup.direct;
    async move {
        let Some(admitted) = node.admit(&handle) else {
            Box::pin(close(&node, &mut wire, codes::DISCONNECT_CONNECTION_LIMIT)).await;
            return;
        };
        if let Some(socket) = direct {
            handle.write_through(socket);
        }
        let reason = run(&node, &mut wire, &mut session, &handle).await;
        // From here on only this task writes; a frame the fan-out left half-written is
        // finished first, so the close frame after it reads as one.
        if let Some(rest) = handle.stop_write_through() {
            let _ = Box::pin(wire.write_framed(rest)).await;
        }
        Box::pin(session.close()).await;
        drop(admitted);
        match reason {
            Some(d) => {
                tracing::debug!(client = %handle.id, code = d.code, reason = d.reason, "disconnecting client");
                Box::pin(close(&node, &mut wire, d)).await;
            }
            None => {
                tracing::debug!(client = %handle.id, "client closed the connection");
                Box::pin(wire.goodbye()).await;
            }
        }
    }
}

async fn close<W: Wire>(node: &Node, wire: &mut W, d: Disconnect) {
    node.metrics
        .disconnects
        .with_label_values(&[&d.code.to_string()])
        .inc();
    wire.close(d).await;
}

/// Runs the connection; returns why the server closes it, or `None` if the client went away.
async fn run<W: Wire>(
    node: &Node,
    wire: &mut W,
    session: &mut Session,
    handle: &ClientHandle,
) -> Option<Disconnect> {
    let cfg = &node.config.client;
    let ping_every = cfg.ping_interval.0;
    let stale_at = Instant::now() + cfg.stale_close_delay.0;
    let mut next_ping = Instant::now() + ping_every;
    let mut pong_deadline: Option<Instant> = None;
    let timer = sleep_until(stale_at.min(next_ping));
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            () = handle.notified() => {
                // client.write_delay: let more messages queue up, to leave in fewer writes.
                if !cfg.write_delay.is_zero() {
                    Box::pin(tokio::time::sleep(cfg.write_delay.0)).await;
                }
                if let Err(d) = Box::pin(flush(wire, session, handle, &node.metrics)).await {
                    return Some(d);
                }
            }
            incoming = wire.recv(handle.protocol) => {
                let data = match incoming {
                    Incoming::Data(d) => d,
                    Incoming::Ignore => continue,
                    Incoming::Ping(payload) => {
                        if let Err(d) = Box::pin(pong(wire, handle, payload)).await {
                            return Some(d);
                        }
                        if let Err(d) = Box::pin(flush(wire, session, handle, &node.metrics)).await {
                            return Some(d);
                        }
                        continue;
                    }
                    Incoming::Gone => return None,
                    Incoming::Refuse(d) => return Some(d),
                };
                // Any message proves the client is alive, a pong included.
                pong_deadline = None;
                let commands = match handle.protocol.decode_commands(&data) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!(client = %handle.id, error = %e, "bad request from client");
                        return Some(codes::DISCONNECT_BAD_REQUEST);
                    }
                };
                for cmd in commands {
                    if let Err(d) = Box::pin(session.handle(cmd)).await {
                        return Some(d);
                    }
                }
                if let Err(d) = Box::pin(flush(wire, session, handle, &node.metrics)).await {
                    return Some(d);
                }
            }
            () = &mut timer => {
                let now = Instant::now();
                if !session.connected() && now >= stale_at {
                    return Some(codes::DISCONNECT_STALE);
                }
                if pong_deadline.is_some_and(|d| now >= d) {
                    return Some(codes::DISCONNECT_NO_PONG);
                }
                if now >= next_ping {
                    next_ping = now + ping_every;
                    if session.connected() {
                        handle.send(frame::ping(handle.protocol));
                        pong_deadline = Some(now + cfg.pong_timeout.0);
                        if let Err(d) = Box::pin(session.check_expiry()).await {
                            return Some(d);
                        }
                    }
                }
                let mut next = next_ping;
                if let Some(d) = pong_deadline {
                    next = next.min(d);
                }
                if !session.connected() {
                    next = next.min(stale_at);
                }
                timer.as_mut().reset(next);
            }
        }
    }
}

/// Answers a WebSocket ping, with direct writes held off until the next flush.
async fn pong<W: Wire>(
    wire: &mut W,
    handle: &ClientHandle,
    payload: Bytes,
) -> Result<(), Disconnect> {
    if let Some(rest) = handle.hold_direct() {
        wire.write_framed(rest).await?;
    }
    wire.pong(payload).await
}

/// Writes everything queued, running server-side actions on the way.
async fn flush<W: Wire>(
    wire: &mut W,
    session: &mut Session,
    handle: &ClientHandle,
    metrics: &crate::metrics::Metrics,
) -> Result<(), Disconnect> {
    loop {
        let mut taken = handle.take_queued();
        if taken.is_empty() && taken.closed.is_none() {
            return Ok(());
        }
        if let Some(rest) = taken.unfinished.take() {
            wire.write_framed(rest)
                .await
                .map_err(|d| handle_write_error(handle, d))?;
        }
        let closed = taken.closed;
        let reached = taken.oldest_publication;
        let mut frames = Vec::new();
        let mut controls = Vec::new();
        for item in taken.into_items() {
            match item {
                Out::Frame(f) => frames.push(f),
                Out::Control(c) => controls.push(*c),
            }
        }
        if let Some(d) = closed {
            // A slow client's backlog was dropped already; other reasons still deliver
            // what was queued before them (e.g. a reply preceding an API disconnect).
            if d != codes::DISCONNECT_SLOW && !frames.is_empty() {
                wire.write(frames).await?;
            }
            return Err(d);
        }
        if !frames.is_empty() {
            wire.write(frames)
                .await
                .map_err(|d| handle_write_error(handle, d))?;
            if let Some(at) = reached {
                metrics.delivery_seconds.observe(at.elapsed().as_secs_f64());
            }
        }
        for c in controls {
            Box::pin(session.control(c)).await?;
        }
    }
}

/// A write that timed out because the queue overflowed meanwhile is a slow client.
fn handle_write_error(handle: &ClientHandle, d: Disconnect) -> Disconnect {
    match handle.take_queued().closed {
        Some(codes::DISCONNECT_SLOW) => codes::DISCONNECT_SLOW,
        _ => d,
    }
}
