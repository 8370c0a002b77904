//! A hub in the test's process that delivers a chat topic live (chat-event mode), on a real
//! socket, with client-side subscriptions to `chat:*`. Shared through `#[path]` modules by the
//! sink's, the transcriber's and the API's tests, which watch what a client would see.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

/// The node and its WebSocket URL; tokens are signed with `client::SECRET`.
pub async fn live_hub(brokers: &str, topic: &str, group: &str) -> (Arc<chorus_hub::Node>, String) {
    let cfg = json!({
        "client": {"token": {"hmac_secret_key": super::client::SECRET},
                   "ping_interval": "120s", "pong_timeout": "20s"},
        "http_api": {"key": "k"},
        "channel": {"namespaces": [{"name": "chat", "history_size": 100, "history_ttl": "300s",
                                    "allow_subscribe_for_client": true}]},
        "consumers": [{"enabled": true, "name": "chats", "type": "kafka", "kafka": {
            "brokers": [brokers], "topics": [topic], "consumer_group": group,
            "chat_event_mode": {"enabled": true}}}]
    });
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let node = serve(&cfg, tcp).await;
    (node, format!("ws://{addr}/connection/websocket"))
}

/// A hub with `cfg` (Centrifugo-style JSON) serving on `tcp`, its Kafka consumers ready. The
/// API's test stack builds its own config (the subscribe proxy) and serves it through here.
pub async fn serve(cfg: &serde_json::Value, tcp: tokio::net::TcpListener) -> Arc<chorus_hub::Node> {
    let config = chorus_hub::config::load_str(
        &cfg.to_string(),
        chorus_hub::config::Format::Json,
        "test",
        Vec::new(),
    )
    .unwrap()
    .config;
    chorus_hub::config::validate::validate(&config).unwrap();
    let node = chorus_hub::Node::new(config, chorus_hub::NodeParts::default()).unwrap();
    let running = chorus_hub::consumer::start(&node).unwrap();
    assert!(chorus_hub::consumer::wait_ready(&running, Duration::from_secs(30)).await);
    let listener = chorus_hub::listener::FdBudgetListener::new(
        tcp,
        1_000,
        node.metrics.connections_refused.clone(),
    );
    tokio::spawn(chorus_hub::server::run(
        node.clone(),
        listener,
        Duration::from_secs(1),
    ));
    node
}
