//! The task that owns one WebSocket.
//!
//! One task per connection, never one per subscription. It waits on three things: the socket,
//! the client's outbound queue (which is also how shutdown and server-side disconnects reach
//! it, see [`super::roster`]) and a single timer (ping, pong deadline, stale connect). Queued
//! frames are written in one WebSocket message, newline-separated, as the protocol allows;
//! that is what keeps a busy fan-out cheap in syscalls. Command handling is
//! boxed so the idle task stays small.

use std::future::Future;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chorus_protocol::codes::{self, Disconnect};
use chorus_protocol::frame::{decode_commands, PING_FRAME};
use tokio::time::{sleep_until, timeout, Instant};

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
pub fn serve(node: Arc<Node>, mut socket: WebSocket) -> impl Future<Output = ()> + Send {
    async move {
        let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let handle = Arc::new(ClientHandle::new(id, node.config.client.queue_max_size));
        // The roster is the open-connection count: enrolling checks the limit and holds the
        // slot however the task ends.
        let Some(_enrolled) = node.roster.enroll(&handle, node.max_connections) else {
            node.metrics.connections_refused.inc();
            Box::pin(close(
                &node,
                &mut socket,
                codes::DISCONNECT_CONNECTION_LIMIT,
            ))
            .await;
            return;
        };
        // Enrolled first, checked second: a shutdown cannot slip between the two.
        if node.shutdown.is_cancelled() {
            handle.disconnect(codes::DISCONNECT_SHUTDOWN);
        }
        node.metrics.connections.inc();
        let mut session = Session::new(node.clone(), handle.clone());
        let reason = run(&node, &mut socket, &mut session, &handle).await;
        Box::pin(session.close()).await;
        node.metrics.connections.dec();
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
                let text = match msg {
                    None | Some(Ok(Message::Close(_))) => return None,
                    Some(Err(e)) => return too_big(e).then_some(codes::DISCONNECT_MESSAGE_TOO_BIG),
                    Some(Ok(Message::Text(t))) => t,
                    // This is the JSON protocol: binary frames are a client bug.
                    Some(Ok(Message::Binary(_))) => return Some(codes::DISCONNECT_BAD_REQUEST),
                    Some(Ok(_)) => continue,
                };
                // Any message proves the client is alive, a pong included.
                pong_deadline = None;
                let commands = match decode_commands(text.as_bytes()) {
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
                        handle.send(Utf8Bytes::from_static(PING_FRAME));
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

/// Joins queued frames into one WebSocket message, newline-separated; controls go aside.
/// A lone frame is sent as it is, without a copy or an allocation.
fn batch(
    items: impl Iterator<Item = Out>,
    controls: &mut Vec<super::Control>,
) -> Option<Utf8Bytes> {
    let mut single: Option<Utf8Bytes> = None;
    let mut joined: Option<String> = None;
    for item in items {
        let frame = match item {
            Out::Frame(f) => f,
            Out::Control(c) => {
                controls.push(*c);
                continue;
            }
        };
        if let Some(j) = joined.as_mut() {
            j.push('\n');
            j.push_str(frame.as_str());
        } else if let Some(prev) = single.take() {
            let mut j = String::with_capacity(prev.len() + frame.len() + 256);
            j.push_str(prev.as_str());
            j.push('\n');
            j.push_str(frame.as_str());
            joined = Some(j);
        } else {
            single = Some(frame);
        }
    }
    joined.map(Utf8Bytes::from).or(single)
}

/// A write that timed out because the queue overflowed meanwhile is a slow client.
fn handle_write_error(handle: &ClientHandle, d: Disconnect) -> Disconnect {
    match handle.take_queued().closed {
        Some(codes::DISCONNECT_SLOW) => codes::DISCONNECT_SLOW,
        _ => d,
    }
}

async fn write(node: &Node, socket: &mut WebSocket, message: Utf8Bytes) -> Result<(), Disconnect> {
    match timeout(
        node.config.websocket.write_timeout.0,
        socket.send(Message::Text(message)),
    )
    .await
    {
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
