//! Shared helpers for component tests: a hub on port 0, and the test kit's raw protocol
//! client, brokers and Redis servers.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chorus_hub::config::{load_str, Format};
use chorus_hub::listener::FdBudgetListener;
use chorus_hub::{Node, NodeParts};
use serde_json::Value;

pub use client::*;

pub mod nodes;
pub use net::listening;

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
    start_with(&config_json(extra_client_config), connection_budget).await
}

/// A hub on port 0 from a whole JSON config.
pub async fn start_with(config_json: &str, connection_budget: usize) -> TestHub {
    let config = load_str(config_json, Format::Json, "test", Vec::new())
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
pub use chorus_testkit::{client, net, redis, tansu};

/// This crate's own `chorus-hub`, for tests that run nodes as processes.
pub fn hub_bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_chorus-hub"))
}
