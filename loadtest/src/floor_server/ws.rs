//! The WebSocket side: the handshake reply, client frames (RFC 6455, masked, unfragmented),
//! and the two commands the harness sends, `connect` and `subscribe`.

use std::sync::Arc;

use chorus_protocol::websocket::{
    self as ws, close_frame, FrameError, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,
};
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::fanout::{Channels, Conn};

/// The largest client frame taken; the harness's commands are a few hundred bytes.
const MAX_FRAME: usize = 64 * 1024;

/// Answers the upgrade, then reads the client's frames until it goes away.
pub async fn serve(
    channels: Arc<Channels>,
    stream: tokio::net::TcpStream,
    key: &str,
    head: Vec<u8>,
) {
    let conn = Conn::new(stream);
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    conn.send(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .as_bytes(),
    );
    // A client may send its first frame right behind the request head.
    let end = super::http::Head::parse(&head)
        .ok()
        .flatten()
        .map_or(head.len(), |h| h.len);
    let mut pending = head[end..].to_vec();
    drop(head);
    let mut subscribed: Vec<Box<str>> = Vec::new();
    read(&channels, &conn, &mut pending, &mut subscribed).await;
    for channel in &subscribed {
        channels.unsubscribe(channel, &conn);
    }
}

async fn read(
    channels: &Channels,
    conn: &Arc<Conn>,
    pending: &mut Vec<u8>,
    subscribed: &mut Vec<Box<str>>,
) {
    loop {
        loop {
            let f = match ws::parse_client_frame(pending, MAX_FRAME) {
                Ok(Some(f)) if pending.len() >= f.frame_len() => f,
                Ok(_) => break,
                Err(e) => {
                    let code = match e {
                        FrameError::TooBig(_) => 1009,
                        _ => ws::CLOSE_PROTOCOL_ERROR,
                    };
                    return conn.send(&close_frame(code, ""));
                }
            };
            let mut payload = pending[f.header_len..f.frame_len()].to_vec();
            ws::unmask(&mut payload, f.mask);
            pending.drain(..f.frame_len());
            match (f.fin, f.opcode) {
                (true, OP_TEXT) => {
                    if !commands(channels, conn, &payload, subscribed) {
                        return;
                    }
                }
                (_, OP_PING) => conn.send(&ws::frame(OP_PONG, &payload)),
                (_, OP_PONG) => {}
                (_, OP_CLOSE) => return conn.send(&close_frame(ws::CLOSE_NORMAL, "")),
                // Binary (the Protobuf protocol) and fragments: a floor need not speak them.
                _ => return conn.send(&close_frame(1003, "")),
            }
        }
        // Idle connections hold no read buffer: the bytes land on the stack, and only a
        // partial frame is kept.
        if pending.is_empty() {
            *pending = Vec::new();
        }
        // Readiness polled rather than awaited with `readable()`: the waker lives in the
        // socket's registration, not in this task, 150 bytes per idle connection.
        if std::future::poll_fn(|cx| conn.stream.poll_read_ready(cx))
            .await
            .is_err()
        {
            return;
        }
        let mut buf = [0u8; 4096];
        match conn.stream.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

#[derive(Deserialize)]
struct Command {
    #[serde(default)]
    id: u32,
    connect: Option<IgnoredAny>,
    subscribe: Option<Subscribe>,
}

#[derive(Deserialize)]
struct Subscribe {
    channel: String,
}

/// Runs the newline-separated commands of one text frame and writes their replies together;
/// false when the frame was not commands and the connection is closed.
fn commands(
    channels: &Channels,
    conn: &Arc<Conn>,
    text: &[u8],
    subscribed: &mut Vec<Box<str>>,
) -> bool {
    let mut replies = String::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let reply = match serde_json::from_slice::<Command>(line) {
            // `{}`: a pong; nothing to answer.
            Ok(Command { id: 0, .. }) => continue,
            Ok(Command {
                id,
                connect: Some(_),
                ..
            }) => format!(r#"{{"id":{id},"connect":{{"client":"floor","version":"floor"}}}}"#),
            Ok(Command {
                id,
                subscribe: Some(s),
                ..
            }) => {
                if !subscribed.iter().any(|c| **c == *s.channel) {
                    channels.subscribe(&s.channel, conn);
                    subscribed.push(s.channel.into());
                }
                format!(r#"{{"id":{id},"subscribe":{{}}}}"#)
            }
            Ok(Command { id, .. }) => {
                format!(r#"{{"id":{id},"error":{{"code":107,"message":"not available"}}}}"#)
            }
            Err(_) => {
                // Centrifugo's bad-request disconnect.
                conn.send(&close_frame(3501, "bad request"));
                return false;
            }
        };
        if !replies.is_empty() {
            replies.push('\n');
        }
        replies.push_str(&reply);
    }
    if !replies.is_empty() {
        conn.send(&ws::frame(OP_TEXT, replies.as_bytes()));
    }
    true
}
