//! A raw protocol client and connection tokens (HS256 with [`SECRET`]): the hub's tests speak
//! the protocol through it, and the end-to-end tests watch what a client would see.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub const SECRET: &str = "test-secret";

pub fn token(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Client {
    pub ws: Ws,
    pending: std::collections::VecDeque<Value>,
}

/// How a read ended when it did not yield a message.
#[derive(Debug, PartialEq)]
pub enum Closed {
    Code(u16),
    NoFrame,
}

impl Client {
    pub async fn open(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client {
            ws,
            pending: Default::default(),
        }
    }

    /// Opens with extra request headers (a browser's `Cookie`, say).
    pub async fn open_with_headers(url: &str, headers: &[(&str, &str)]) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().unwrap();
        for (name, value) in headers {
            req.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap(),
                value.parse().unwrap(),
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Client {
            ws,
            pending: Default::default(),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, s: &str) {
        self.ws
            .send(Message::Text(s.to_owned().into()))
            .await
            .unwrap();
    }

    /// Next reply or push, skipping server pings; Err when the server closed.
    pub async fn next(&mut self) -> Result<Value, Closed> {
        self.next_within(Duration::from_secs(10))
            .await
            .map(|v| v.expect("timed out waiting for the hub"))
    }

    /// [`Self::next`], or Ok(None) when nothing came within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Value>, Closed> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(v) = self.pending.pop_front() {
                if v.as_object().is_some_and(|m| m.is_empty()) {
                    continue;
                }
                return Ok(Some(v));
            }
            let Ok(msg) = tokio::time::timeout_at(deadline, self.ws.next()).await else {
                return Ok(None);
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    for line in t.as_str().split('\n').filter(|l| !l.is_empty()) {
                        self.pending.push_back(serde_json::from_str(line).unwrap());
                    }
                }
                Some(Ok(Message::Close(Some(f)))) => return Err(Closed::Code(f.code.into())),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                    return Err(Closed::NoFrame)
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Everything (but pings) that arrives within `window`: for checking that nothing does.
    pub async fn quiet_for(&mut self, window: Duration) -> Vec<Value> {
        let mut got: Vec<Value> = self.pending.drain(..).collect();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(msg) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match msg {
                Some(Ok(Message::Text(t))) => got.extend(
                    t.as_str()
                        .split('\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| serde_json::from_str::<Value>(l).unwrap()),
                ),
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        got.retain(|v| !v.as_object().is_some_and(|m| m.is_empty()));
        got
    }

    /// Next push that is not a join or leave.
    pub async fn next_pub(&mut self) -> Value {
        loop {
            let v = self.next().await.unwrap();
            let push = &v["push"];
            if push.get("join").is_none() && push.get("leave").is_none() {
                return v;
            }
        }
    }

    /// Reads until the reply with `id`, keeping pushes for later.
    pub async fn reply(&mut self, id: u64) -> Value {
        self.try_reply(id).await.unwrap()
    }

    /// [`Self::reply`], or how the connection closed first.
    pub async fn try_reply(&mut self, id: u64) -> Result<Value, Closed> {
        let mut skipped = Vec::new();
        loop {
            let v = self.next().await?;
            if v["id"] == json!(id) {
                for s in skipped.into_iter().rev() {
                    self.pending.push_front(s);
                }
                return Ok(v);
            }
            skipped.push(v);
        }
    }

    pub async fn connect(url: &str, user: &str) -> (Client, Value) {
        let mut c = Client::open(url).await;
        c.send(json!({"id": 1, "connect": {"token": token(json!({"sub": user}))}}))
            .await;
        let r = c.reply(1).await;
        (c, r)
    }

    /// [`Self::connect`], or None when the node is gone (killed, restarting).
    pub async fn try_connect(url: &str, user: &str) -> Option<(Client, Value)> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
        let mut c = Client {
            ws,
            pending: Default::default(),
        };
        let connect = json!({"id": 1, "connect": {"token": token(json!({"sub": user}))}});
        c.ws.send(Message::Text(connect.to_string().into()))
            .await
            .ok()?;
        let r = c.try_reply(1).await.ok()?;
        Some((c, r))
    }
}

/// A `multipart/form-data` body with one part, `file`, as browsers upload it; send it with
/// `Content-Type: multipart/form-data; boundary=MULTIPART_BOUNDARY`.
pub fn multipart_file(file: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{MULTIPART_BOUNDARY}--\r\n").as_bytes());
    body
}

pub const MULTIPART_BOUNDARY: &str = "chorus-test-boundary";
