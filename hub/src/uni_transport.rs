//! The HTTP side of the unidirectional transports (see [`crate::client::uni`] for the
//! session): `/connection/uni_sse` (GET with the connect request in `cf_connect`, as a
//! browser's `EventSource` must, or POST with it as the body), `/connection/uni_http_stream`
//! (POST, newline-delimited JSON back) and `/connection/uni_websocket` (the connect request
//! as the first message, one push per message back). Each is off unless its
//! `uni_*.enabled` is set, as in Centrifugo.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chorus_protocol::codes;
use chorus_protocol::frame::ConnectRequest;
use tokio::sync::mpsc;

use crate::client::{uni, Outbound};
use crate::node::Node;
use crate::stream_body::{self, ConnectQuery, Framing};

/// Starts the session and streams what it hands over as the response body.
fn stream(node: Arc<Node>, req: ConnectRequest, framing: Framing, headers: &HeaderMap) -> Response {
    // One batch in flight: a reader that does not keep up backs up the session's own
    // bounded queue, which closes it as slow.
    let (tx, rx) = mpsc::channel::<Outbound>(1);
    let transport = match framing {
        Framing::Sse => "uni_sse",
        _ => "uni_http_stream",
    };
    let kept = node.proxies.keep_headers(headers);
    tokio::spawn(uni::run(node, req, transport, kept, tx));
    (
        [
            (header::CONTENT_TYPE, framing.content_type()),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        stream_body::body(framing, rx, uni::disconnect_line),
    )
        .into_response()
}

/// Why a connect request was refused before any session began.
enum BadConnect {
    Json(String),
    TooLarge,
}

impl IntoResponse for BadConnect {
    fn into_response(self) -> Response {
        match self {
            BadConnect::Json(why) => (
                StatusCode::BAD_REQUEST,
                format!("bad connect request: {why}\n"),
            )
                .into_response(),
            BadConnect::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "connect request too large\n").into_response()
            }
        }
    }
}

fn parse(body: &[u8]) -> Result<ConnectRequest, BadConnect> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ConnectRequest::default());
    }
    serde_json::from_slice(body).map_err(|e| BadConnect::Json(e.to_string()))
}

async fn read_body(req: Request, limit: usize) -> Result<ConnectRequest, BadConnect> {
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| BadConnect::TooLarge)?;
    parse(&body)
}

pub async fn sse_get(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    Query(q): Query<ConnectQuery>,
) -> Response {
    match parse(q.cf_connect.as_bytes()) {
        Ok(req) => stream(node, req, Framing::Sse, &headers),
        Err(r) => r.into_response(),
    }
}

pub async fn sse_post(State(node): State<Arc<Node>>, req: Request) -> Response {
    let limit = node.config.uni_sse.max_request_body_size;
    let headers = req.headers().clone();
    match read_body(req, limit).await {
        Ok(req) => stream(node, req, Framing::Sse, &headers),
        Err(r) => r.into_response(),
    }
}

pub async fn http_stream(State(node): State<Arc<Node>>, req: Request) -> Response {
    let limit = node.config.uni_http_stream.max_request_body_size;
    let headers = req.headers().clone();
    match read_body(req, limit).await {
        Ok(req) => stream(node, req, Framing::Lines, &headers),
        Err(r) => r.into_response(),
    }
}

pub async fn websocket(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !crate::origin::allowed(&node.config.client.allowed_origins, &headers) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let limit = node.config.uni_websocket.message_size_limit;
    let kept = node.proxies.keep_headers(&headers);
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| serve_websocket(node, socket, kept))
}

async fn serve_websocket(node: Arc<Node>, mut socket: WebSocket, headers: Option<Arc<HeaderMap>>) {
    let first = tokio::time::timeout(node.config.client.stale_close_delay.0, socket.recv()).await;
    let req = match first {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<ConnectRequest>(t.as_str()).ok(),
        Ok(Some(Ok(Message::Close(_))) | None) => return,
        _ => None,
    };
    let Some(req) = req else {
        close(&node, &mut socket, codes::DISCONNECT_BAD_REQUEST).await;
        return;
    };
    let (tx, mut rx) = mpsc::channel::<Outbound>(1);
    tokio::spawn(uni::run(node.clone(), req, "uni_websocket", headers, tx));
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Frames(lines)) => {
                    for l in lines {
                        let Ok(text) = Utf8Bytes::try_from(l) else { continue };
                        if socket.send(Message::Text(text)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Outbound::Close(d)) => {
                    close(&node, &mut socket, d).await;
                    return;
                }
                None => return,
            },
            // The client only ever closes; anything else it sends is ignored.
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn close(node: &Node, socket: &mut WebSocket, d: codes::Disconnect) {
    let frame = CloseFrame {
        code: d.code,
        reason: Utf8Bytes::from_static(d.reason),
    };
    let _ = tokio::time::timeout(
        node.config.websocket.write_timeout.0,
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}
