//! Unidirectional connections: `uni_websocket`, `uni_sse` and `uni_http_stream`.
//!
//! A client with no SDK (a browser's `EventSource`, `curl`, a server-side consumer) sends one
//! connect request and then only listens. The session is the same as a WebSocket client's:
//! the token's `channels` become server-side subscriptions, `subs` in the connect request
//! recover them after a reconnect, and the server API's subscribe, unsubscribe and disconnect
//! reach it. What differs is the framing, Centrifugo's unidirectional protocol: each line is
//! a bare push (`{"channel":"c","pub":{...}}`, not wrapped in `{"push":...}`), the connect
//! result is a `{"connect":{...}}` push, `{}` is a ping (no pong expected), and the end is a
//! `{"disconnect":{"code":..,"reason":".."}}` push.
//!
//! Fan-out queues the same shared bytes a JSON WebSocket client gets; [`line`] slices the
//! `{"push":` wrapper off them without a copy.

use std::sync::Arc;

use axum::http::HeaderMap;
use bytes::Bytes;
use chorus_protocol::codes::{self, Disconnect};
use chorus_protocol::frame::{Command, ConnectRequest, Method};
use chorus_protocol::Protocol;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use super::frame::{self, Frame};
use super::queue::Out;
use super::session::Session;
use super::{ClientHandle, Outbound};
use crate::node::Node;

/// The id the connect command runs under; its reply becomes the `connect` push.
const CONNECT_ID: u32 = 1;
const REPLY_PREFIX: &[u8] = b"{\"id\":1,";
const PUSH_PREFIX: &[u8] = b"{\"push\":";

/// A frame queued for a JSON client, as a unidirectional line.
pub fn line(f: &Frame) -> Bytes {
    let Frame::Text(t) = f else {
        // Unidirectional clients are JSON clients: nothing else is queued for them.
        return Bytes::new();
    };
    let bytes = Bytes::from(t.clone());
    if bytes.starts_with(PUSH_PREFIX) && bytes.ends_with(b"}") {
        return bytes.slice(PUSH_PREFIX.len()..bytes.len() - 1);
    }
    if bytes.starts_with(REPLY_PREFIX) {
        let mut out = Vec::with_capacity(bytes.len() - REPLY_PREFIX.len() + 1);
        out.push(b'{');
        out.extend_from_slice(&bytes[REPLY_PREFIX.len()..]);
        return Bytes::from(out);
    }
    bytes
}

/// The push that ends a unidirectional stream.
pub fn disconnect_line(d: Disconnect) -> Bytes {
    let body = serde_json::json!({ "disconnect": { "code": d.code, "reason": d.reason } });
    Bytes::from(body.to_string())
}

/// Runs one unidirectional session until the client goes away (`tx` closed), the server
/// closes it, or the node shuts down.
/// `transport` is what proxy requests call it (`uni_sse`, ...); `headers` the client's request
/// headers a proxy passes on.
pub async fn run(
    node: Arc<Node>,
    req: ConnectRequest,
    transport: &'static str,
    headers: Option<Arc<HeaderMap>>,
    tx: mpsc::Sender<Outbound>,
) {
    let id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    let queue_max = node.config.client.queue_max_size;
    let handle = Arc::new(ClientHandle::speaking(id, queue_max, Protocol::Json));
    let Some(admitted) = node.admit(&handle) else {
        let _ = tx
            .send(Outbound::Close(codes::DISCONNECT_CONNECTION_LIMIT))
            .await;
        return;
    };
    let mut session = Session::new(node.clone(), handle.clone());
    session.transport = transport;
    session.headers = headers;
    let reason = serve(&node, &mut session, &handle, req, &tx).await;
    Box::pin(session.close()).await;
    drop(admitted);
    if let Some(d) = reason {
        node.metrics
            .disconnects
            .with_label_values(&[&d.code.to_string()])
            .inc();
        let _ = timeout(
            node.config.websocket.write_timeout.0,
            tx.send(Outbound::Close(d)),
        )
        .await;
    }
}

async fn serve(
    node: &Node,
    session: &mut Session,
    handle: &ClientHandle,
    req: ConnectRequest,
    tx: &mpsc::Sender<Outbound>,
) -> Option<Disconnect> {
    let connect = Command {
        id: CONNECT_ID,
        method: Method::Connect(req),
    };
    if let Err(d) = Box::pin(session.handle(connect)).await {
        return Some(d);
    }
    if !session.connected() {
        // The one error a connect replies with rather than closing: an expired token. A
        // unidirectional client cannot refresh; it reconnects with a new one.
        return Some(codes::DISCONNECT_EXPIRED);
    }
    let ping_every = node.config.client.ping_interval.0;
    let timer = sleep_until(Instant::now() + ping_every);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            () = handle.notified() => {
                if let Err(d) = Box::pin(flush(node, session, handle, tx)).await {
                    return d;
                }
            }
            () = tx.closed() => return None,
            () = &mut timer => {
                handle.send(frame::ping(Protocol::Json));
                if let Err(d) = Box::pin(session.check_expiry()).await {
                    return Some(d);
                }
                timer.as_mut().reset(Instant::now() + ping_every);
            }
        }
    }
}

/// Hands everything queued to the transport. `Err(None)`: the client went away.
async fn flush(
    node: &Node,
    session: &mut Session,
    handle: &ClientHandle,
    tx: &mpsc::Sender<Outbound>,
) -> Result<(), Option<Disconnect>> {
    loop {
        let taken = handle.take_queued();
        if taken.is_empty() && taken.closed.is_none() {
            return Ok(());
        }
        let closed = taken.closed;
        let mut lines = Vec::new();
        let mut controls = Vec::new();
        for item in taken.into_items() {
            match item {
                Out::Frame(f) => lines.push(line(&f)),
                Out::Control(c) => controls.push(*c),
            }
        }
        if let Some(d) = closed {
            if d != codes::DISCONNECT_SLOW && !lines.is_empty() {
                let _ = timeout(
                    node.config.websocket.write_timeout.0,
                    tx.send(Outbound::Frames(lines)),
                )
                .await;
            }
            return Err(Some(d));
        }
        if !lines.is_empty() {
            // A reader that stops reading backs the channel up; past the write timeout it
            // is a slow client, as a stuck WebSocket write is.
            match timeout(
                node.config.websocket.write_timeout.0,
                tx.send(Outbound::Frames(lines)),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(None),
                Err(_) => return Err(Some(codes::DISCONNECT_SLOW)),
            }
        }
        for c in controls {
            Box::pin(session.control(c)).await.map_err(Some)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_lose_their_wrapper_and_the_connect_reply_its_id() {
        let push = Frame::from(r#"{"push":{"channel":"c","pub":{"data":{"a":1}}}}"#);
        assert_eq!(
            &line(&push)[..],
            br#"{"channel":"c","pub":{"data":{"a":1}}}"#
        );
        let reply = Frame::from(r#"{"id":1,"connect":{"client":"x"}}"#);
        assert_eq!(&line(&reply)[..], br#"{"connect":{"client":"x"}}"#);
        assert_eq!(&line(&Frame::from("{}"))[..], b"{}");
        assert_eq!(
            &disconnect_line(codes::DISCONNECT_SHUTDOWN)[..],
            br#"{"disconnect":{"code":3001,"reason":"shutdown"}}"#
        );
    }
}
