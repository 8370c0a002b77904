//! Server HTTP API tests through the router (`oneshot`, no socket).
#![allow(clippy::unwrap_used)]

mod common;

use common::api;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

async fn raw(hub: &common::TestHub, method: &str, key: Option<&str>, body: &str) -> (u16, String) {
    let mut req = axum::http::Request::post(format!("/api/{method}"));
    if let Some(k) = key {
        req = req.header("Authorization", format!("apikey {k}"));
    }
    let resp = chorus_hub::server::app(hub.node.clone())
        .oneshot(req.body(axum::body::Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn auth_and_bad_requests() {
    let hub = common::start("", usize::MAX).await;
    assert_eq!(raw(&hub, "info", None, "{}").await.0, 401);
    assert_eq!(raw(&hub, "info", Some("wrong"), "{}").await.0, 401);
    assert_eq!(raw(&hub, "info", Some(common::API_KEY), "{}").await.0, 200);
    assert_eq!(
        raw(&hub, "publish", Some(common::API_KEY), "{broken")
            .await
            .0,
        400
    );
    assert_eq!(raw(&hub, "nope", Some(common::API_KEY), "{}").await.0, 404);
    let (status, body) = api(&hub, "publish", json!({"channel": "unknown:x", "data": {}})).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"error": {"code": 102, "message": "unknown channel"}})
        )
    );
}

#[tokio::test]
async fn publish_history_idempotency_and_batch() {
    let hub = common::start("", usize::MAX).await;
    let (_, first) = api(
        &hub,
        "publish",
        json!({"channel": "chat:h", "data": {"n": 1}, "idempotency_key": "k"}),
    )
    .await;
    let (_, again) = api(
        &hub,
        "publish",
        json!({"channel": "chat:h", "data": {"n": 1}, "idempotency_key": "k"}),
    )
    .await;
    assert_eq!(first, again, "a retried publish returns the first result");
    assert_eq!(first["result"]["offset"], 1);
    let (_, b) = api(
        &hub,
        "batch",
        json!({"commands": [
            {"publish": {"channel": "chat:h", "data": {"n": 2}}},
            {"publish": {"channel": "nope:x", "data": {}}}
        ]}),
    )
    .await;
    assert_eq!(b["replies"][0]["publish"]["offset"], 2);
    assert_eq!(b["replies"][1]["error"]["code"], 102);
    let (_, h) = api(&hub, "history", json!({"channel": "chat:h", "limit": 10})).await;
    let offsets: Vec<u64> = h["result"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![1, 2]);
    let (_, bc) = api(
        &hub,
        "broadcast",
        json!({"channels": ["chat:h", "chat:i"], "data": {"n": 3}}),
    )
    .await;
    assert_eq!(bc["result"]["responses"].as_array().unwrap().len(), 2);
    api(&hub, "history_remove", json!({"channel": "chat:h"})).await;
    let (_, h) = api(&hub, "history", json!({"channel": "chat:h", "limit": 10})).await;
    assert_eq!(h["result"].get("publications"), None);
    assert_eq!(h["result"]["offset"], 3, "position survives history_remove");
    let (_, i) = api(&hub, "info", json!({})).await;
    assert_eq!(i["result"]["nodes"].as_array().unwrap().len(), 1);
    let (_, e) = api(&hub, "history", json!({"channel": "news"})).await;
    assert_eq!(e["error"]["code"], 108, "history is off outside chat");
}

#[tokio::test]
async fn health_and_metrics() {
    let hub = common::start("", usize::MAX).await;
    let app = chorus_hub::server::app(hub.node.clone());
    let resp = app
        .clone()
        .oneshot(
            axum::http::Request::get("/health")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    api(&hub, "publish", json!({"channel": "news", "data": {}})).await;
    let resp = app
        .oneshot(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for name in [
        "chorus_hub_connections",
        "chorus_hub_api_command_duration_seconds",
        "chorus_hub_connections_refused_total",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}
