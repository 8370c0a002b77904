//! Bidirectional emulation: a client whose transport only carries frames from the server (an
//! HTTP-streaming or SSE response) sends its commands as `/emulation` requests naming its
//! session, as Centrifugo's SDKs do when WebSockets are blocked.
//!
//! The session is the WebSocket client's (the same task, [`super::connection::serve`]), on
//! a [`Wire`] whose commands come from an inbox and whose frames go to the response body. The
//! inbox is found by the session id, a random secret the connect result carries: not the
//! client id, which presence shows to other users, so nobody can send commands as another
//! client. An `/emulation` request reaching another node is routed to this one through the
//! engine's control channel ([`crate::node::Node::emulate`]); the inboxes are
//! [`super::inbox`]'s.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;
use chorus_protocol::codes::{self, Disconnect};
use chorus_protocol::frame::DisconnectPush;
use chorus_protocol::Protocol;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::connection::{serve, Incoming, Setup, Wire};
use super::frame::{self, Frame};
use super::inbox::INBOX;
use super::Outbound;
use crate::node::Node;

/// Commands from the inbox in; frames to the response body out; a disconnect push at the end.
struct EmulatedWire {
    inbox: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Outbound>,
    write_timeout: Duration,
}

impl Wire for EmulatedWire {
    async fn recv(&mut self, _: Protocol) -> Incoming {
        tokio::select! {
            data = self.inbox.recv() => data.map_or(Incoming::Gone, Incoming::Data),
            // The response body was dropped: the client went away.
            () = self.out.closed() => Incoming::Gone,
        }
    }

    async fn write(&mut self, frames: Vec<Frame>) -> Result<(), Disconnect> {
        let frames = frames.into_iter().map(Frame::into_bytes).collect();
        // A reader that stops reading backs the channel up; past the write timeout it is a
        // slow client, as a stuck WebSocket write is.
        match timeout(self.write_timeout, self.out.send(Outbound::Frames(frames))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(codes::DISCONNECT_WRITE_ERROR),
        }
    }

    async fn close(&mut self, d: Disconnect) {
        let _ = timeout(self.write_timeout, self.out.send(Outbound::Close(d))).await;
    }
}

/// The push that ends an emulated connection, telling the SDK whether to reconnect.
pub fn disconnect_push(protocol: Protocol, d: Disconnect) -> Bytes {
    let body = DisconnectPush {
        code: u32::from(d.code),
        reason: d.reason,
        reconnect: d.reconnect(),
    };
    frame::push(protocol, "", "disconnect", &body).into_bytes()
}

/// Serves one emulated connection: `first` holds its first commands (the connect), `out`
/// takes its frames until the client goes away or the server ends it.
pub async fn run(
    node: Arc<Node>,
    first: Bytes,
    protocol: Protocol,
    transport: &'static str,
    headers: Option<Arc<HeaderMap>>,
    out: mpsc::Sender<Outbound>,
) {
    let session: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    let (tx, inbox) = mpsc::channel(INBOX);
    // Cannot fail: the inbox is new and has room.
    let _ = tx.try_send(first);
    let inboxes = node.clone();
    let _registered = inboxes.emulated.register(session.clone(), tx);
    let wire = EmulatedWire {
        inbox,
        out,
        write_timeout: node.config.websocket.write_timeout.0,
    };
    let setup = Setup {
        transport,
        emulation: Some(session),
        direct: None,
    };
    serve(node, wire, protocol, headers, setup).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disconnect_push_says_whether_to_reconnect() {
        assert_eq!(
            &disconnect_push(Protocol::Json, codes::DISCONNECT_SHUTDOWN)[..],
            br#"{"push":{"disconnect":{"code":3001,"reason":"shutdown","reconnect":true}}}"#
        );
        assert_eq!(
            &disconnect_push(Protocol::Json, codes::DISCONNECT_FORCE_NO_RECONNECT)[..],
            br#"{"push":{"disconnect":{"code":3503,"reason":"force disconnect","reconnect":false}}}"#
        );
    }
}
