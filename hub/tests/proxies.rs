//! The connect, refresh, publish and rpc proxies against a real HTTP backend on loopback:
//! the backend's answers decide (a cookie authenticates a connection with no JWT, a
//! publication is rewritten, an RPC answered), its errors and disconnects reach the client
//! as they are, and a backend that is down, slow or answers garbage gets the client a
//! temporary error: never a connection, a publication or an answer it did not give.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use serde_json::{json, Value};

const DOWN: u8 = 1;
const SLOW: u8 = 2;
const GARBAGE: u8 = 3;

#[derive(Default)]
struct Backend {
    mode: AtomicU8,
    /// (proxy, request body, Cookie header) of every call.
    calls: parking_lot::Mutex<Vec<(String, Value, String)>>,
}

impl Backend {
    fn calls(&self, proxy: &str) -> Vec<Value> {
        self.calls
            .lock()
            .iter()
            .filter(|c| c.0 == proxy)
            .map(|c| c.1.clone())
            .collect()
    }
}

fn decide(proxy: &str, req: &Value, cookie: &str) -> Value {
    match proxy {
        "connect" => match cookie {
            "session=alice-secret" => json!({"result": {
                "user": "alice", "expire_at": now() + 1, "info": {"name": "Alice"},
                "data": {"hello": "alice"}, "channels": ["news:alice"]}}),
            "session=erin-secret" => json!({"result": {"user": "erin", "expire_at": now() + 1}}),
            "session=bob-secret" => json!({"result": {"user": "bob"}}),
            "session=banned" => json!({"disconnect": {"code": 4501, "reason": "banned"}}),
            _ => json!({"error": {"code": 1401, "message": "no session"}}),
        },
        "refresh" if req["user"] == "alice" => json!({"result": {"expire_at": now() + 600}}),
        "refresh" => json!({"result": {"expired": true}}),
        "publish" if req["user"] == "alice" => {
            json!({"result": {"data": {"who": "alice", "typing": req["data"]["typing"]}}})
        }
        "publish" => json!({"error": {"code": 1403, "message": "not a member"}}),
        "subscribe" => json!({"result": {"expire_at": now() + 1}}),
        "sub_refresh" if req["channel"] == "room:keep" => {
            json!({"result": {"expire_at": now() + 600}})
        }
        "sub_refresh" => json!({"result": {"expired": true}}),
        "rpc" => {
            let sum =
                req["data"]["a"].as_i64().unwrap_or(0) + req["data"]["b"].as_i64().unwrap_or(0);
            json!({"result": {"data": {"sum": sum, "method": req["method"]}}})
        }
        _ => json!({}),
    }
}

async fn backend(state: Arc<Backend>) -> String {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let app = Router::new().route(
        "/{proxy}",
        post(
            move |Path(proxy): Path<String>, headers: HeaderMap, Json(req): Json<Value>| {
                let state = state.clone();
                async move {
                    let cookie = headers
                        .get("cookie")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    state
                        .calls
                        .lock()
                        .push((proxy.clone(), req.clone(), cookie.clone()));
                    match state.mode.load(Ordering::SeqCst) {
                        DOWN => (StatusCode::SERVICE_UNAVAILABLE, "down".to_owned()),
                        SLOW => {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            (StatusCode::OK, decide(&proxy, &req, &cookie).to_string())
                        }
                        GARBAGE => (StatusCode::OK, "<html>not json</html>".to_owned()),
                        _ => (StatusCode::OK, decide(&proxy, &req, &cookie).to_string()),
                    }
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(tcp, app).await });
    format!("http://{addr}")
}

fn config(base: &str) -> String {
    format!(
        r#"{{
        "client": {{"token": {{"hmac_secret_key": "{SECRET}"}}, "ping_interval": "3s", "pong_timeout": "2s",
            "proxy": {{
                "connect": {{"enabled": true, "endpoint": "{base}/connect", "timeout": "300ms", "http_headers": ["Cookie"]}},
                "refresh": {{"enabled": true, "endpoint": "{base}/refresh", "timeout": "300ms"}}
            }}}},
        "http_api": {{"key": "{API_KEY}"}},
        "channel": {{
            "proxy": {{"publish": {{"endpoint": "{base}/publish", "timeout": "300ms"}},
                      "subscribe": {{"endpoint": "{base}/subscribe", "timeout": "300ms"}},
                      "sub_refresh": {{"endpoint": "{base}/sub_refresh", "timeout": "300ms"}}}},
            "namespaces": [
                {{"name": "news", "allow_subscribe_for_client": true}},
                {{"name": "typing", "allow_subscribe_for_client": true, "publish_proxy_enabled": true}},
                {{"name": "room", "subscribe_proxy_enabled": true, "sub_refresh_proxy_enabled": true}}
            ]
        }},
        "proxies": [{{"name": "backend", "endpoint": "{base}/rpc", "timeout": "300ms"}}],
        "rpc": {{"namespaces": [{{"name": "math", "proxy_enabled": true, "proxy_name": "backend"}}]}}
    }}"#
    )
}

async fn connect_with(hub: &TestHub, cookie: &str) -> (Client, Result<Value, Closed>) {
    let mut c = Client::open_with_headers(&hub.url, &[("Cookie", cookie)]).await;
    c.send(json!({"id": 1, "connect": {"name": "test"}})).await;
    let r = loop {
        match c.next().await {
            Ok(v) if v["id"] == 1 => break Ok(v),
            Ok(_) => continue,
            Err(e) => break Err(e),
        }
    };
    (c, r)
}

fn failures(hub: &TestHub, proxy: &str) -> u64 {
    hub.node
        .metrics
        .proxy_failures
        .with_label_values(&[proxy])
        .get()
}

#[tokio::test]
async fn connect_proxy_authenticates_by_cookie_and_never_opens_on_failure() {
    let state = Arc::new(Backend::default());
    let hub = common::start_with(&config(&backend(state.clone()).await), usize::MAX).await;

    let (_alice, r) = connect_with(&hub, "session=alice-secret").await;
    let r = r.unwrap();
    let result = &r["connect"];
    assert_eq!(result["data"], json!({"hello": "alice"}));
    assert!(result["subs"].get("news:alice").is_some(), "{r}");
    assert_eq!(
        result.get("expires"),
        None,
        "the refresh proxy extends it: the client is not asked to refresh"
    );
    let call = &state.calls("connect")[0];
    assert_eq!(call["transport"], "websocket");
    assert_eq!(call["name"], "test");
    assert_eq!(
        state.calls.lock()[0].2,
        "session=alice-secret",
        "cookie passed on"
    );

    let (_, r) = connect_with(&hub, "session=nobody").await;
    assert_eq!(
        r.unwrap()["error"]["code"],
        1401,
        "the backend's error as is"
    );
    let (_, r) = connect_with(&hub, "session=banned").await;
    assert_eq!(
        r.unwrap_err(),
        Closed::Code(4501),
        "the backend's disconnect"
    );

    for (mode, n) in [(DOWN, 1), (SLOW, 2), (GARBAGE, 3)] {
        state.mode.store(mode, Ordering::SeqCst);
        let (_, r) = connect_with(&hub, "session=alice-secret").await;
        let r = r.unwrap();
        assert_eq!(r["error"]["code"], 100, "mode {mode}: {r}");
        assert_eq!(r["error"]["temporary"], true);
        assert!(r.get("connect").is_none());
        assert_eq!(failures(&hub, "connect"), n);
    }
}

#[tokio::test]
async fn refresh_proxy_extends_or_ends_a_connection_on_the_server_side() {
    let state = Arc::new(Backend::default());
    let hub = common::start_with(&config(&backend(state.clone()).await), usize::MAX).await;
    // Both expire within a second; the backend extends alice and ends erin.
    let (mut alice, r) = connect_with(&hub, "session=alice-secret").await;
    r.unwrap();
    let (mut erin, r) = connect_with(&hub, "session=erin-secret").await;
    r.unwrap();
    assert_eq!(
        erin.next().await,
        Err(Closed::Code(3005)),
        "expired by the backend"
    );
    while state.calls("refresh").iter().all(|c| c["user"] != "alice") {
        alice.send(json!({})).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Extended by ten minutes: still connected, still served.
    alice
        .send(json!({"id": 5, "subscribe": {"channel": "news:x"}}))
        .await;
    assert!(alice.reply(5).await.get("subscribe").is_some());
    let refreshes = state.calls("refresh");
    assert_eq!(
        refreshes.iter().filter(|c| c["user"] == "alice").count(),
        1,
        "asked once, then extended: {refreshes:?}"
    );
}

#[tokio::test]
async fn publish_proxy_rewrites_or_refuses_and_a_broken_backend_publishes_nothing() {
    let state = Arc::new(Backend::default());
    let hub = common::start_with(&config(&backend(state.clone()).await), usize::MAX).await;
    let (mut watcher, _) = Client::connect(&hub.url, "watcher").await;
    watcher
        .send(json!({"id": 2, "subscribe": {"channel": "typing:1"}}))
        .await;
    watcher.reply(2).await;

    let (mut alice, r) = connect_with(&hub, "session=alice-secret").await;
    r.unwrap();
    alice
        .send(json!({"id": 3, "publish": {"channel": "typing:1", "data": {"typing": true, "extra": 1}}}))
        .await;
    assert!(alice.reply(3).await.get("publish").is_some());
    let got = watcher.next_pub().await;
    assert_eq!(
        got["push"]["pub"]["data"],
        json!({"who": "alice", "typing": true}),
        "the backend's rewrite, not the client's data"
    );

    let (mut bob, r) = connect_with(&hub, "session=bob-secret").await;
    r.unwrap();
    bob.send(json!({"id": 3, "publish": {"channel": "typing:1", "data": {"typing": true}}}))
        .await;
    assert_eq!(bob.reply(3).await["error"]["code"], 1403);

    for mode in [DOWN, SLOW, GARBAGE] {
        state.mode.store(mode, Ordering::SeqCst);
        alice
            .send(json!({"id": 4, "publish": {"channel": "typing:1", "data": {"typing": false}}}))
            .await;
        let r = alice.reply(4).await;
        assert_eq!(r["error"]["code"], 100, "mode {mode}: {r}");
    }
    let leaked = watcher.quiet_for(Duration::from_millis(500)).await;
    assert!(
        leaked.is_empty(),
        "nothing published without the backend: {leaked:?}"
    );
}

#[tokio::test]
async fn rpc_reaches_the_named_proxy_of_its_namespace() {
    let state = Arc::new(Backend::default());
    let hub = common::start_with(&config(&backend(state.clone()).await), usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "carol").await;
    c.send(json!({"id": 2, "rpc": {"method": "math:add", "data": {"a": 2, "b": 3}}}))
        .await;
    assert_eq!(
        c.reply(2).await["rpc"]["data"],
        json!({"sum": 5, "method": "math:add"})
    );
    assert_eq!(state.calls("rpc")[0]["user"], "carol");
    c.send(json!({"id": 3, "rpc": {"method": "other:x", "data": {}}}))
        .await;
    assert_eq!(
        c.reply(3).await["error"]["code"],
        104,
        "no proxy for that namespace"
    );
    state.mode.store(GARBAGE, Ordering::SeqCst);
    c.send(json!({"id": 4, "rpc": {"method": "math:add", "data": {"a": 1, "b": 1}}}))
        .await;
    assert_eq!(c.reply(4).await["error"]["code"], 100);
}

#[tokio::test]
async fn sub_refresh_proxy_extends_or_ends_a_subscription_on_the_server_side() {
    let state = Arc::new(Backend::default());
    let hub = common::start_with(&config(&backend(state.clone()).await), usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "dave").await;
    for (id, channel) in [(2, "room:keep"), (3, "room:drop")] {
        c.send(json!({"id": id, "subscribe": {"channel": channel}}))
            .await;
        let r = c.reply(id).await;
        assert_eq!(
            r["subscribe"].get("expires"),
            None,
            "not the client's to refresh: {r}"
        );
    }
    // Both expire within a second; on the next tick the backend ends one and extends the other.
    let push = loop {
        let v = c.next().await.unwrap();
        if v["push"].get("unsubscribe").is_some() {
            break v;
        }
    };
    assert_eq!(push["push"]["channel"], "room:drop");
    assert_eq!(push["push"]["unsubscribe"]["code"], 2501);
    let asked: Vec<Value> = state
        .calls("sub_refresh")
        .iter()
        .map(|c| c["channel"].clone())
        .collect();
    assert!(
        asked.contains(&json!("room:keep")) && asked.contains(&json!("room:drop")),
        "{asked:?}"
    );
    api(
        &hub,
        "publish",
        json!({"channel": "room:keep", "data": {"n": 1}}),
    )
    .await;
    assert_eq!(
        c.next_pub().await["push"]["channel"],
        "room:keep",
        "still subscribed"
    );
}
