//! The task that owns one WebSocket.
//!
//! One task per connection, never one per subscription. It waits on three things: the socket,
//! the client's outbound queue (which is also how shutdown and server-side disconnects reach
//! it, see [`super::roster`]) and a single timer (ping, pong deadline, stale connect). Queued
//! frames are written in one WebSocket message (newline-separated JSON, or Protobuf replies
//! one after another), as the protocol allows;
//! that is what keeps a busy fan-out cheap in syscalls. Command handling is
//! boxed so the idle task stays small.

use std::future::Future;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::http::HeaderMap;
use chorus_protocol::codes::{self, Disconnect};
use chorus_protocol::Protocol;
use tokio::time::{sleep_until, timeout, Instant};

use super::frame::{self, Frame};
use super::queue::Out;
use super::session::Session;
use super::ClientHandle;
use crate::node::Node;

/// Serves one upgraded WebSocket until it closes.
///
/// A plain function returning an `async move` block rather than an `async fn`: an async fn
/// keeps its by-value arguments as upvars *and* as locals, so the 368-byte socket would sit
/// in every idle connection's task twice. Captured once here, it is stored once.
#[allow(clippy::manual_async_fn)] // see above: the async fn form stores the socket twice
pub fn serve(
    node: Arc<Node>,
    mut socket: WebSocket,
    protocol: Protocol,
    headers: Option<Arc<HeaderMap>>,
) -> impl Future<Output = ()> + Send {
    async move {
        let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let queue_max = node.config.client.queue_max_size;
        let handle = Arc::new(ClientHandle::speaking(id, queue_max, protocol));
        let Some(admitted) = node.admit(&handle) else {
            Box::pin(close(
                &node,
                &mut socket,
                codes::DISCONNECT_CONNECTION_LIMIT,
            ))
            .await;
            return;
        };
        let mut session = Session::new(node.clone(), handle.clone());
        session.headers = headers;
        let reason = run(&node, &mut socket, &mut session, &handle).await;
        Box::pin(session.close()).await;
        drop(admitted);
        match reason {
            Some(d) => {
                tracing::debug!(client = %handle.id, code = d.code, reason = d.reason, "disconnecting client");
                Box::pin(close(&node, &mut socket, d)).await;
            }
            None => tracing::debug!(client = %handle.id, "client closed the connection"),
        }
    }
}

async fn close(node: &Node, socket: &mut WebSocket, d: Disconnect) {
    node.metrics
        .disconnects
        .with_label_values(&[&d.code.to_string()])
        .inc();
    let frame = CloseFrame {
        code: d.code,
        reason: Utf8Bytes::from_static(d.reason),
    };
    let _ = timeout(
        node.config.websocket.write_timeout.0,
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}

/// Runs the connection; returns why the server closes it, or `None` if the client went away.
async fn run(
    node: &Node,
    socket: &mut WebSocket,
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
                if let Err(d) = Box::pin(flush(node, socket, session, handle)).await {
                    return Some(d);
                }
            }
            msg = socket.recv() => {
                let protocol = handle.protocol;
                let data = match (msg, protocol) {
                    (None | Some(Ok(Message::Close(_))), _) => return None,
                    (Some(Err(e)), _) => return too_big(e).then_some(codes::DISCONNECT_MESSAGE_TOO_BIG),
                    (Some(Ok(Message::Text(t))), Protocol::Json) => t.into(),
                    (Some(Ok(Message::Binary(b))), Protocol::Protobuf) => b,
                    // Text on a Protobuf connection or binary on a JSON one: a client bug.
                    (Some(Ok(Message::Text(_) | Message::Binary(_))), _) => {
                        return Some(codes::DISCONNECT_BAD_REQUEST)
                    }
                    (Some(Ok(_)), _) => continue,
                };
                // Any message proves the client is alive, a pong included.
                pong_deadline = None;
                let commands = match protocol.decode_commands(&data) {
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
                if let Err(d) = Box::pin(flush(node, socket, session, handle)).await {
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

/// Writes everything queued, running server-side actions on the way.
async fn flush(
    node: &Node,
    socket: &mut WebSocket,
    session: &mut Session,
    handle: &ClientHandle,
) -> Result<(), Disconnect> {
    loop {
        let taken = handle.take_queued();
        if taken.is_empty() && taken.closed.is_none() {
            return Ok(());
        }
        let closed = taken.closed;
        let reached = taken.oldest_publication;
        let mut controls = Vec::new();
        let message = batch(taken.into_items(), &mut controls);
        if let Some(d) = closed {
            // A slow client's backlog was dropped already; other reasons still deliver
            // what was queued before them (e.g. a reply preceding an API disconnect).
            if let Some(m) = message.filter(|_| d != codes::DISCONNECT_SLOW) {
                write(node, socket, m).await?;
            }
            return Err(d);
        }
        if let Some(m) = message {
            write(node, socket, m)
                .await
                .map_err(|d| handle_write_error(handle, d))?;
            if let Some(at) = reached {
                node.metrics
                    .delivery_seconds
                    .observe(at.elapsed().as_secs_f64());
            }
        }
        for c in controls {
            Box::pin(session.control(c)).await?;
        }
    }
}

/// Joins queued frames into one WebSocket message; controls go aside.
fn batch(items: impl Iterator<Item = Out>, controls: &mut Vec<super::Control>) -> Option<Message> {
    let mut frames: Vec<Frame> = Vec::new();
    for item in items {
        match item {
            Out::Frame(f) => frames.push(f),
            Out::Control(c) => controls.push(*c),
        }
    }
    frame::message(frames)
}

/// A write that timed out because the queue overflowed meanwhile is a slow client.
fn handle_write_error(handle: &ClientHandle, d: Disconnect) -> Disconnect {
    match handle.take_queued().closed {
        Some(codes::DISCONNECT_SLOW) => codes::DISCONNECT_SLOW,
        _ => d,
    }
}

async fn write(node: &Node, socket: &mut WebSocket, message: Message) -> Result<(), Disconnect> {
    match timeout(node.config.websocket.write_timeout.0, socket.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) | Err(_) => Err(codes::DISCONNECT_WRITE_ERROR),
    }
}

/// Whether a read failed because the client sent more than `websocket.message_size_limit`.
fn too_big(e: axum::Error) -> bool {
    let inner = e.into_inner();
    matches!(
        inner.downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}
