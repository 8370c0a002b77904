//! The subscribe proxy against a real HTTP backend on loopback: the backend's answer decides,
//! its error reaches the client as is, and a backend that is down or broken gets the client a
//! temporary error (never a subscription).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use serde_json::{json, Value};

/// What the backend does: 200 with the decision, or this status when non-zero.
#[derive(Default)]
struct Backend {
    fail_with: AtomicU16,
    calls: parking_lot::Mutex<Vec<Value>>,
}

async fn backend(state: Arc<Backend>) -> String {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let app = Router::new().route(
        "/proxy/subscribe",
        post(move |headers: HeaderMap, Json(req): Json<Value>| {
            let state = state.clone();
            async move {
                state.calls.lock().push(req.clone());
                let fail = state.fail_with.load(Ordering::SeqCst);
                if fail != 0 {
                    return (StatusCode::from_u16(fail).unwrap(), "broken".to_owned());
                }
                if headers.get("x-proxy-key").and_then(|v| v.to_str().ok()) != Some("k1") {
                    return (StatusCode::UNAUTHORIZED, "no key".to_owned());
                }
                let answer = if req["user"] == "ann" {
                    json!({"result": {"info": {"role": "member"}}})
                } else if req["user"] == "bob" {
                    json!({"error": {"code": 1403, "message": "not a member"}})
                } else {
                    json!({"something": "else"})
                };
                (StatusCode::OK, answer.to_string())
            }
        }),
    );
    tokio::spawn(async move { axum::serve(tcp, app).await });
    format!("http://{addr}/proxy/subscribe")
}

fn config(endpoint: &str) -> String {
    format!(
        r#"{{
        "client": {{"token": {{"hmac_secret_key": "{SECRET}"}}}},
        "http_api": {{"key": "{API_KEY}"}},
        "channel": {{
            "proxy": {{"subscribe": {{"endpoint": "{endpoint}", "timeout": "1s",
                                     "static_http_headers": {{"X-Proxy-Key": "k1"}}}}}},
            "namespaces": [
                {{"name": "chat", "presence": true, "allow_presence_for_subscriber": true, "subscribe_proxy_enabled": true}},
                {{"name": "open", "allow_subscribe_for_client": true}}
            ]
        }}
    }}"#
    )
}

async fn subscribe(c: &mut Client, id: u64, channel: &str) -> Value {
    c.send(json!({"id": id, "subscribe": {"channel": channel}}))
        .await;
    c.reply(id).await
}

#[tokio::test]
async fn the_backend_decides_and_its_failures_never_grant() {
    let state = Arc::new(Backend::default());
    let endpoint = backend(state.clone()).await;
    let hub = start_with(&config(&endpoint), 1000).await;

    // Granted: the info the backend returned shows in presence.
    let (mut ann, _) = Client::connect(&hub.url, "ann").await;
    let r = subscribe(&mut ann, 2, "chat:7").await;
    assert!(r.get("error").is_none(), "{r}");
    let call = state.calls.lock()[0].clone();
    assert_eq!(call["user"], "ann");
    assert_eq!(call["channel"], "chat:7");
    assert_eq!(call["transport"], "websocket");
    assert!(call["client"].as_str().is_some_and(|c| !c.is_empty()));
    ann.send(json!({"id": 3, "presence": {"channel": "chat:7"}}))
        .await;
    let p = ann.reply(3).await;
    let info: Vec<&Value> = p["presence"]["presence"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| &v["chan_info"])
        .collect();
    assert_eq!(info, vec![&json!({"role": "member"})], "{p}");

    // Refused with the backend's own error.
    let (mut bob, _) = Client::connect(&hub.url, "bob").await;
    let r = subscribe(&mut bob, 2, "chat:7").await;
    assert_eq!(r["error"]["code"], 1403, "{r}");
    assert_eq!(r["error"]["message"], "not a member");

    // A namespace without the proxy keeps namespace permissions: no call is made.
    let before = state.calls.lock().len();
    let r = subscribe(&mut bob, 3, "open:x").await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(state.calls.lock().len(), before);

    // An answer of the wrong shape, a 500 and a dead backend: temporary internal error.
    let (mut eve, _) = Client::connect(&hub.url, "eve").await;
    let r = subscribe(&mut eve, 2, "chat:7").await;
    assert_eq!(r["error"]["code"], 100, "{r}");
    assert_eq!(r["error"]["temporary"], true, "{r}");
    state.fail_with.store(500, Ordering::SeqCst);
    let r = subscribe(&mut bob, 4, "chat:7").await;
    assert_eq!(r["error"]["code"], 100, "{r}");
    assert_eq!(r["error"]["temporary"], true, "{r}");

    let dead_port = tansu::free_port();
    let dead = start_with(
        &config(&format!("http://127.0.0.1:{dead_port}/proxy/subscribe")),
        1000,
    )
    .await;
    let (mut ann2, _) = Client::connect(&dead.url, "ann").await;
    let r = subscribe(&mut ann2, 2, "chat:7").await;
    assert_eq!(r["error"]["code"], 100, "{r}");
    assert_eq!(r["error"]["temporary"], true, "{r}");

    // Back up: the same client's retry is granted.
    state.fail_with.store(0, Ordering::SeqCst);
    let r = subscribe(&mut bob, 5, "chat:8").await;
    assert_eq!(r["error"]["code"], 1403, "{r}");
    let r = subscribe(&mut ann, 4, "chat:8").await;
    assert!(r.get("error").is_none(), "{r}");
}
