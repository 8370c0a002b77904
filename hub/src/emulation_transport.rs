//! The HTTP side of bidirectional emulation (see [`crate::client::emulated`] for the
//! session), as centrifuge-js uses it through its `transports` option:
//!
//! - `/connection/http_stream`: POST with the client's first commands (its connect) as the
//!   body, JSON, or Protobuf with `Content-Type: application/octet-stream`; the response
//!   streams the connection's frames, one JSON per line or length-delimited Protobuf.
//! - `/connection/sse`: GET with the first commands in `cf_connect` (a browser's
//!   `EventSource` cannot POST), or POST with them as the body; JSON only; each frame is an
//!   event's `data:`.
//! - `/emulation`: POST `{"session":"..","node":"..","data":"<commands>"}` (or the Protobuf
//!   `EmulationRequest`): the client's later commands, for the session its connect result
//!   named, on this node or on the node named (routed through the engine).
//!
//! Each is off unless `http_stream.enabled` or `sse.enabled` is set, as in Centrifugo.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chorus_protocol::Protocol;
use tokio::sync::mpsc;

use crate::client::{emulated, Outbound};
use crate::node::Node;
use crate::stream_body::{self, ConnectQuery, Framing};

const OCTET_STREAM: &str = "application/octet-stream";

/// Why a request was refused before reaching a session.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    Origin,
    NoCommands,
    TooLarge,
    Malformed(String),
    NoSession,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Origin => (StatusCode::FORBIDDEN, "origin not allowed\n".to_owned()),
            Refused::NoCommands => (StatusCode::BAD_REQUEST, "no connect command\n".to_owned()),
            Refused::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request too large\n".to_owned(),
            ),
            Refused::Malformed(why) => (
                StatusCode::BAD_REQUEST,
                format!("bad emulation request: {why}\n"),
            ),
            Refused::NoSession => (StatusCode::NOT_FOUND, "no such session\n".to_owned()),
        }
        .into_response()
    }
}

fn protocol_of(headers: &HeaderMap) -> Protocol {
    match headers.get(header::CONTENT_TYPE) {
        Some(v) if v.as_bytes().starts_with(OCTET_STREAM.as_bytes()) => Protocol::Protobuf,
        _ => Protocol::Json,
    }
}

async fn read_body(req: Request, limit: usize) -> Result<Bytes, Refused> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| Refused::TooLarge)
}

/// Starts the session on its first commands and streams its frames as the response.
fn stream(
    node: Arc<Node>,
    first: Bytes,
    protocol: Protocol,
    framing: Framing,
    headers: &HeaderMap,
) -> Result<Response, Refused> {
    if !crate::origin::allowed(&node.config.client.allowed_origins, headers) {
        return Err(Refused::Origin);
    }
    if first.iter().all(u8::is_ascii_whitespace) {
        return Err(Refused::NoCommands);
    }
    // One batch in flight: a reader that does not keep up backs up the session's own
    // bounded queue, which closes it as slow.
    let (tx, rx) = mpsc::channel::<Outbound>(1);
    let transport = match framing {
        Framing::Sse => "sse",
        _ => "http_stream",
    };
    let kept = node.proxies.keep_headers(headers);
    tokio::spawn(emulated::run(node, first, protocol, transport, kept, tx));
    let last = move |d| emulated::disconnect_push(protocol, d);
    Ok((
        [
            (header::CONTENT_TYPE, framing.content_type()),
            (
                header::CACHE_CONTROL,
                "private, no-cache, no-store, must-revalidate, max-age=0",
            ),
            // Tells nginx not to buffer the stream.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        stream_body::body(framing, rx, last),
    )
        .into_response())
}

pub async fn http_stream(State(node): State<Arc<Node>>, req: Request) -> Response {
    let headers = req.headers().clone();
    let protocol = protocol_of(&headers);
    let framing = match protocol {
        Protocol::Json => Framing::Lines,
        Protocol::Protobuf => Framing::Delimited,
    };
    let limit = node.config.http_stream.max_request_body_size;
    let opened = match read_body(req, limit).await {
        Ok(first) => stream(node, first, protocol, framing, &headers),
        Err(r) => Err(r),
    };
    opened.unwrap_or_else(IntoResponse::into_response)
}

pub async fn sse_get(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    Query(q): Query<ConnectQuery>,
) -> Response {
    let first = Bytes::from(q.cf_connect);
    stream(node, first, Protocol::Json, Framing::Sse, &headers)
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn sse_post(State(node): State<Arc<Node>>, req: Request) -> Response {
    let headers = req.headers().clone();
    let limit = node.config.sse.max_request_body_size;
    let opened = match read_body(req, limit).await {
        Ok(first) => stream(node, first, Protocol::Json, Framing::Sse, &headers),
        Err(r) => Err(r),
    };
    opened.unwrap_or_else(IntoResponse::into_response)
}

/// An `/emulation` request: which session, on which node, and its commands.
#[derive(Debug, PartialEq, Eq)]
struct EmulationRequest {
    node: String,
    session: String,
    data: Bytes,
}

/// Reads an `/emulation` body: JSON, whose `data` is the commands as a string (how
/// centrifuge-js sends them), or Protobuf, whose `data` is the commands' bytes.
fn parse_emulation(body: &[u8], protocol: Protocol) -> Result<EmulationRequest, Refused> {
    let bad = |e: &dyn std::fmt::Display| Refused::Malformed(e.to_string());
    match protocol {
        Protocol::Json => {
            #[derive(serde::Deserialize)]
            struct Json {
                #[serde(default)]
                node: String,
                session: String,
                data: String,
            }
            let j: Json = serde_json::from_slice(body).map_err(|e| bad(&e))?;
            Ok(EmulationRequest {
                node: j.node,
                session: j.session,
                data: Bytes::from(j.data),
            })
        }
        Protocol::Protobuf => {
            let p = chorus_protocol::proto::decode_emulation_request(body).map_err(|e| bad(&e))?;
            Ok(EmulationRequest {
                node: p.node,
                session: p.session,
                data: p.data,
            })
        }
    }
}

pub async fn emulation(State(node): State<Arc<Node>>, req: Request) -> Response {
    let headers = req.headers().clone();
    let limit = node.config.emulation.max_request_body_size;
    let answered = async {
        if !crate::origin::allowed(&node.config.client.allowed_origins, &headers) {
            return Err(Refused::Origin);
        }
        let body = read_body(req, limit).await?;
        let req = parse_emulation(&body, protocol_of(&headers))?;
        if req.session.is_empty() || !node.emulate(&req.node, &req.session, req.data).await {
            return Err(Refused::NoSession);
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    answered.await.unwrap_or_else(IntoResponse::into_response)
}

/// A browser's CORS preflight for the POST endpoints; whether the origin may follow is
/// still decided by `client.allowed_origins` on the request itself.
pub async fn preflight(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("300"),
    );
    if crate::origin::allowed(&node.config.client.allowed_origins, &headers) {
        if let Some(origin) = headers.get(header::ORIGIN) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emulation_request_is_read_in_either_protocol() {
        let json =
            br#"{"session":"s","node":"n","data":"{\"id\":2,\"subscribe\":{\"channel\":\"c\"}}"}"#;
        assert_eq!(
            parse_emulation(json, Protocol::Json),
            Ok(EmulationRequest {
                node: "n".into(),
                session: "s".into(),
                data: Bytes::from_static(br#"{"id":2,"subscribe":{"channel":"c"}}"#),
            })
        );
        // Protobuf EmulationRequest{node: "n", session: "s", data: [1, 2]}.
        let proto = [0x0a, 1, b'n', 0x12, 1, b's', 0x1a, 2, 1, 2];
        assert_eq!(
            parse_emulation(&proto, Protocol::Protobuf),
            Ok(EmulationRequest {
                node: "n".into(),
                session: "s".into(),
                data: Bytes::from_static(&[1, 2]),
            })
        );
        assert!(matches!(
            parse_emulation(br#"{"session":"s","data":{"id":1}}"#, Protocol::Json),
            Err(Refused::Malformed(_))
        ));
        assert!(matches!(
            parse_emulation(&[0xff, 0xff], Protocol::Protobuf),
            Err(Refused::Malformed(_))
        ));
    }
}
