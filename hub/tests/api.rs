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

async fn status_of(app: axum::Router, req: axum::http::Request<axum::body::Body>) -> u16 {
    app.oneshot(req).await.unwrap().status().as_u16()
}

fn info_with_query(key: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::post(format!("/api/info?api_key={key}"))
        .body(axum::body::Body::from("{}"))
        .unwrap()
}

/// The key is not taken from the URL (access logs keep URLs) unless a config asks for it,
/// and a key that differs in its last byte, or is a prefix of the real one, is refused.
#[tokio::test]
async fn the_api_key_comes_from_headers_only_unless_asked_and_must_match_whole() {
    let hub = common::start("", usize::MAX).await;
    let app = chorus_hub::server::app(hub.node.clone());
    assert_eq!(
        status_of(app.clone(), info_with_query(common::API_KEY)).await,
        401
    );
    let mut near = common::API_KEY.to_owned();
    near.pop();
    assert_eq!(
        raw(&hub, "info", Some(&near), "{}").await.0,
        401,
        "a prefix"
    );
    near.push('X');
    assert_eq!(
        raw(&hub, "info", Some(&near), "{}").await.0,
        401,
        "the last byte"
    );
    assert_eq!(
        raw(&hub, "info", Some(&format!("{}x", common::API_KEY)), "{}")
            .await
            .0,
        401
    );

    let cfg = common::config_json("").replacen(
        &format!(r#""http_api": {{"key": "{}"}}"#, common::API_KEY),
        &format!(
            r#""http_api": {{"key": "{}", "allow_key_in_query": true}}"#,
            common::API_KEY
        ),
        1,
    );
    let opted_in = common::start_with(&cfg, usize::MAX).await;
    let app = chorus_hub::server::app(opted_in.node.clone());
    assert_eq!(
        status_of(app.clone(), info_with_query(common::API_KEY)).await,
        200
    );
    assert_eq!(status_of(app, info_with_query("wrong")).await, 401);
}

/// With `http_server.internal_port`, the client port serves the WebSocket endpoint alone; the
/// server API, `/health` and `/metrics` answer on the internal router only.
#[tokio::test]
async fn an_internal_port_takes_the_api_health_and_metrics_off_the_client_port() {
    let cfg = common::config_json("").replacen(
        r#""websocket":"#,
        r#""http_server": {"internal_port": 9999}, "websocket":"#,
        1,
    );
    let hub = common::start_with(&cfg, usize::MAX).await;
    let public = chorus_hub::server::app(hub.node.clone());
    let internal = chorus_hub::server::internal_app(hub.node.clone());
    let info = || {
        axum::http::Request::post("/api/info")
            .header("X-API-Key", common::API_KEY)
            .body(axum::body::Body::from("{}"))
            .unwrap()
    };
    let get = |p: &str| {
        axum::http::Request::get(p)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    assert_eq!(status_of(public.clone(), info()).await, 404);
    assert_eq!(status_of(public.clone(), get("/health")).await, 404);
    assert_eq!(status_of(public, get("/metrics")).await, 404);
    assert_eq!(status_of(internal.clone(), info()).await, 200);
    assert_eq!(status_of(internal.clone(), get("/health")).await, 200);
    assert_eq!(status_of(internal, get("/metrics")).await, 200);
}
