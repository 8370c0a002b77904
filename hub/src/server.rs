//! The HTTP server: WebSocket endpoint, server API, `/health` and `/metrics` on one port, or
//! with `http_server.internal_port` the last three on an internal port of their own (as
//! Centrifugo does), so the API key and the metrics are never reachable from the client side.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use chorus_protocol::Protocol;

use crate::listener::FdBudgetListener;
use crate::node::Node;
use crate::socket::SocketRef;
use crate::{emulation_transport, uni_transport};

/// What a node serves on `http_server.port`, for `axum::serve` or for `oneshot` tests: the
/// client endpoint, and the internal routes too unless `internal_port` takes them.
pub fn app(node: Arc<Node>) -> Router {
    let mut router = Router::new().route("/connection/websocket", get(websocket));
    let cfg = &node.config;
    if cfg.uni_websocket.enabled {
        router = router.route("/connection/uni_websocket", get(uni_transport::websocket));
    }
    if cfg.uni_sse.enabled {
        router = router.route(
            "/connection/uni_sse",
            get(uni_transport::sse_get).post(uni_transport::sse_post),
        );
    }
    if cfg.uni_http_stream.enabled {
        router = router.route(
            "/connection/uni_http_stream",
            post(uni_transport::http_stream),
        );
    }
    if cfg.http_stream.enabled {
        router = router.route(
            "/connection/http_stream",
            post(emulation_transport::http_stream).options(emulation_transport::preflight),
        );
    }
    if cfg.sse.enabled {
        router = router.route(
            "/connection/sse",
            get(emulation_transport::sse_get)
                .post(emulation_transport::sse_post)
                .options(emulation_transport::preflight),
        );
    }
    if cfg.http_stream.enabled || cfg.sse.enabled {
        router = router.route(
            "/emulation",
            post(emulation_transport::emulation).options(emulation_transport::preflight),
        );
    }
    if node.config.http_server.internal_port == 0 {
        router = router.merge(internal_routes(&node));
    }
    router.with_state(node)
}

/// What a node serves on `http_server.internal_port`.
pub fn internal_app(node: Arc<Node>) -> Router {
    internal_routes(&node).with_state(node)
}

fn internal_routes(node: &Node) -> Router<Arc<Node>> {
    let mut router = crate::api::router();
    if node.config.health.enabled {
        router = router.route("/health", get(health));
    }
    if node.config.prometheus.enabled {
        router = router.route("/metrics", get(metrics));
    }
    router
}

/// Serves [`internal_app`] on `listener` until the node shuts down.
pub async fn serve_internal(
    node: Arc<Node>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let shutdown = node.shutdown.clone();
    axum::serve(listener, internal_app(node))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn websocket(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    socket: Option<Extension<ConnectInfo<SocketRef>>>,
    ws: WebSocketUpgrade,
) -> Response {
    if !crate::origin::allowed(&node.config.client.allowed_origins, &headers) {
        tracing::info!(origin = ?headers.get(header::ORIGIN), "websocket origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let Some(Extension(ConnectInfo(SocketRef(socket)))) = socket else {
        tracing::error!("websocket request without its socket: serve the app with server::run");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // axum checks and answers the handshake; the connection is framed by the hub itself.
    // Centrifugo's Protobuf protocol is asked for by subprotocol; without it, JSON.
    let ws = ws.protocols([Protocol::PROTOBUF_SUBPROTOCOL]);
    let protocol = match ws.selected_protocol() {
        Some(p) if p == Protocol::PROTOBUF_SUBPROTOCOL => Protocol::Protobuf,
        _ => Protocol::Json,
    };
    let kept = node.proxies.keep_headers(&headers);
    ws.on_upgrade(move |upgraded| {
        // tungstenite's stream (and hyper's buffers with it) is dropped; the socket it ran
        // on stays. A client sends nothing before the 101 (RFC 6455 §4.1), so nothing
        // buffered is lost with them.
        drop(upgraded);
        crate::client::websocket::serve_websocket(node, socket, protocol, kept)
    })
}

/// `ok`, or `degraded` (still 200: clients are served) while a consumer cannot reach Kafka
/// or is retrying a record, or while the Redis engine cannot reach Redis; 503 only while
/// shutting down.
async fn health(State(node): State<Arc<Node>>) -> Response {
    let json = [(header::CONTENT_TYPE, "application/json")];
    if node.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json,
            r#"{"status":"shutting_down"}"#,
        )
            .into_response();
    }
    let consumers = node.consumers.snapshots();
    let redis = node.config.engine.is_redis();
    if consumers.is_empty() && !redis {
        return (json, r#"{"status":"ok"}"#).into_response();
    }
    let engine_up = node.broker.is_up();
    let status = if engine_up && consumers.iter().all(|c| c.healthy()) {
        "ok"
    } else {
        "degraded"
    };
    let mut body = serde_json::json!({ "status": status });
    if redis {
        body["engine"] = serde_json::json!({ "type": "redis", "up": engine_up });
    }
    if !consumers.is_empty() {
        body["consumers"] = serde_json::json!(consumers);
    }
    (json, body.to_string()).into_response()
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    node.metrics
        .queued_bytes
        .set(node.hub.queued_bytes() as i64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics.render(),
    )
        .into_response()
}

/// Serves until `node.shutdown` is cancelled, then gives connections `grace` to close.
pub async fn run(
    node: Arc<Node>,
    listener: FdBudgetListener,
    grace: Duration,
) -> std::io::Result<()> {
    let shutdown = node.shutdown.clone();
    // Connections learn of shutdown through their queues, not by each waiting on the token.
    let roster_node = node.clone();
    tokio::spawn(async move {
        roster_node.shutdown.cancelled().await;
        roster_node
            .roster
            .disconnect_all(chorus_protocol::codes::DISCONNECT_SHUTDOWN);
    });
    // Each request carries its socket, for the WebSocket endpoint to take over.
    let app = app(node.clone()).into_make_service_with_connect_info::<SocketRef>();
    let serve = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await });
    let mut serving = std::pin::pin!(serve.into_future());
    // The grace period starts at shutdown, not at startup.
    tokio::select! {
        result = &mut serving => return result,
        _ = node.shutdown.cancelled() => {}
    }
    match tokio::time::timeout(grace, serving).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                remaining = node.open_connections(),
                "shutdown grace period ended with connections open"
            );
            Ok(())
        }
    }
}
