//! The HTTP side: the first request head of every connection, and `POST /api/publish` over
//! keep-alive connections (the harness's publishers reuse theirs).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::fanout::Channels;

/// The largest publish body taken.
const MAX_BODY: usize = 1 << 20;

/// What the floor needs of a request head.
pub struct Head {
    /// Bytes the head took, blank line included.
    pub len: usize,
    post: bool,
    path: String,
    content_length: usize,
    close: bool,
    upgrade: bool,
    websocket_key: Option<String>,
}

impl Head {
    /// The head at the start of `buf`, `None` while it is incomplete.
    pub fn parse(buf: &[u8]) -> Result<Option<Head>, httparse::Error> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(len) = req.parse(buf)? else {
            return Ok(None);
        };
        let mut head = Head {
            len,
            post: req.method == Some("POST"),
            path: req.path.unwrap_or("").to_string(),
            content_length: 0,
            close: req.version == Some(0),
            upgrade: false,
            websocket_key: None,
        };
        for h in req.headers.iter() {
            let value = std::str::from_utf8(h.value).unwrap_or("").trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                head.content_length = value.parse().unwrap_or(usize::MAX);
            } else if h.name.eq_ignore_ascii_case("connection") {
                head.close |= value.eq_ignore_ascii_case("close");
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                head.upgrade = value.eq_ignore_ascii_case("websocket");
            } else if h.name.eq_ignore_ascii_case("sec-websocket-key") {
                head.websocket_key = Some(value.to_string());
            }
        }
        Ok(Some(head))
    }

    /// For a request to the WebSocket endpoint: its key, or the status refusing it.
    /// `None`: not a WebSocket request.
    pub fn websocket_key(&self) -> Option<Result<String, u16>> {
        let path = self.path.split('?').next().unwrap_or("");
        if path != "/connection/websocket" {
            return None;
        }
        Some(match (&self.websocket_key, self.upgrade) {
            (Some(key), true) => Ok(key.clone()),
            _ => Err(400),
        })
    }
}

#[derive(Deserialize)]
struct Publish<'a> {
    #[serde(borrow)]
    channel: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Answers requests on one connection until the client closes it or asks to.
pub async fn serve(channels: Arc<Channels>, mut stream: TcpStream, mut buf: Vec<u8>) {
    loop {
        let head = loop {
            match Head::parse(&buf) {
                Ok(Some(head)) => break head,
                Ok(None) if buf.len() < super::MAX_HEAD => {}
                _ => return refuse(&mut stream, 400).await,
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        if head.content_length > MAX_BODY {
            return refuse(&mut stream, 413).await;
        }
        let end = head.len + head.content_length;
        while buf.len() < end {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let (status, body) = if head.post && head.path == "/api/publish" {
            match serde_json::from_slice::<Publish<'_>>(&buf[head.len..end]) {
                Ok(p) => {
                    channels.publish(&p.channel, p.data.get());
                    (200, r#"{"result":{}}"#)
                }
                Err(_) => (400, r#"{"error":{"code":107,"message":"bad request"}}"#),
            }
        } else {
            (404, r#"{"error":{"code":404,"message":"not found"}}"#)
        };
        if respond(&mut stream, status, body).await.is_err() || head.close {
            return;
        }
        buf.drain(..end);
    }
}

/// Answers `status` and closes.
pub async fn refuse(stream: &mut TcpStream, status: u16) {
    let _ = respond(stream, status, "").await;
}

async fn respond(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Payload Too Large",
        _ => "Error",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_says_what_the_request_is() {
        let req = b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Key: abc==\r\n\r\nrest";
        let head = Head::parse(req).expect("valid").expect("complete");
        assert_eq!(head.len, req.len() - 4);
        assert_eq!(head.websocket_key(), Some(Ok("abc==".to_string())));
        assert!(Head::parse(&req[..20]).expect("valid").is_none());

        let post = b"POST /api/publish HTTP/1.1\r\nContent-Length: 12\r\n\r\n";
        let head = Head::parse(post).expect("valid").expect("complete");
        assert!(head.post && !head.close);
        assert_eq!((head.content_length, head.websocket_key()), (12, None));

        let no_upgrade = b"GET /connection/websocket HTTP/1.1\r\n\r\n";
        let head = Head::parse(no_upgrade).expect("valid").expect("complete");
        assert_eq!(head.websocket_key(), Some(Err(400)));
    }
}
