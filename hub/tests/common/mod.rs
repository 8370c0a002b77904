//! Shared helpers for component tests: a hub on port 0 and a raw protocol client.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chorus_hub::config::{load_str, Format};
use chorus_hub::listener::FdBudgetListener;
use chorus_hub::{Node, NodeParts};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub const SECRET: &str = "test-secret";
pub const API_KEY: &str = "test-api-key";

pub fn config_json(extra: &str) -> String {
    format!(
        r#"{{
        "client": {{"token": {{"hmac_secret_key": "{SECRET}"}}, "ping_interval": "2s", "pong_timeout": "1s", "stale_close_delay": "2s"{extra}}},
        "http_api": {{"key": "{API_KEY}"}},
        "websocket": {{"message_size_limit": 4096}},
        "channel": {{
            "without_namespace": {{"allow_subscribe_for_client": true}},
            "namespaces": [
                {{"name": "chat", "presence": true, "join_leave": true, "force_push_join_leave": true,
                  "history_size": 100, "history_ttl": "300s", "force_recovery": true,
                  "allow_subscribe_for_client": true, "allow_publish_for_subscriber": true,
                  "allow_presence_for_subscriber": true, "allow_history_for_subscriber": true}},
                {{"name": "locked"}}
            ]
        }}
    }}"#
    )
}

pub struct TestHub {
    pub node: Arc<Node>,
    pub url: String,
    pub api: String,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn start(extra_client_config: &str, connection_budget: usize) -> TestHub {
    let config = load_str(
        &config_json(extra_client_config),
        Format::Json,
        "test",
        Vec::new(),
    )
    .unwrap()
    .config;
    chorus_hub::config::validate::validate(&config).unwrap();
    let node = Node::new(
        config,
        NodeParts {
            fd_connection_budget: connection_budget,
            ..Default::default()
        },
    )
    .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = FdBudgetListener::new(tcp, 10_000, node.metrics.connections_refused.clone());
    let task = tokio::spawn(chorus_hub::server::run(
        node.clone(),
        listener,
        Duration::from_secs(5),
    ));
    TestHub {
        node,
        url: format!("ws://{addr}/connection/websocket"),
        api: format!("http://{addr}/api"),
        task,
    }
}

/// Waits until something listens on 127.0.0.1:`port`; false after `tries` × 50 ms.
pub async fn listening(port: u16, tries: u32) -> bool {
    for _ in 0..tries {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

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
        loop {
            if let Some(v) = self.pending.pop_front() {
                if v.as_object().is_some_and(|m| m.is_empty()) {
                    continue;
                }
                return Ok(v);
            }
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("timed out waiting for the hub");
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
        let mut skipped = Vec::new();
        loop {
            let v = self.next().await.unwrap();
            if v["id"] == json!(id) {
                for s in skipped.into_iter().rev() {
                    self.pending.push_front(s);
                }
                return v;
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
}

pub async fn api(hub: &TestHub, method: &str, body: Value) -> (u16, Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = axum::http::Request::post(format!("/api/{method}"))
        .header("X-API-Key", API_KEY)
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let resp = chorus_hub::server::app(hub.node.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
pub mod process;
pub mod redis;
pub mod tansu;
