//! The server HTTP API: `POST /api/<method>` with Centrifugo's request and response shapes.
//! HTTP only: the key, the body, `batch`, and the error mode. What a method means is
//! [`crate::command`]'s, which the Kafka consumer's API mode shares.
//!
//! - Errors of a method come back as `200 {"error": {...}}` (Centrifugo's default), or as an
//!   HTTP status with `X-Centrifugo-Error-Mode: transport`. A body that is not valid JSON
//!   for the method is a `400`; a bad or missing key a `401`; an unknown method a `404`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::command::{Command, CommandError};
use crate::node::Node;

/// Parses and runs one method.
async fn dispatch(node: &Node, method: &str, params: &str) -> Result<String, CommandError> {
    Command::parse(method, params)?.run(node).await
}

/// The API routes; the caller supplies the node as state.
pub fn router() -> Router<Arc<Node>> {
    Router::new().route("/api/{method}", post(call))
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn authorized(node: &Node, headers: &HeaderMap, query: Option<&str>) -> bool {
    let api = &node.config.http_api;
    if api.insecure {
        return true;
    }
    if api.key.is_empty() {
        return false;
    }
    let header_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let auth_key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("apikey "));
    // A key in the URL lands in access logs and proxies' logs: only when asked for.
    let query_key = query
        .filter(|_| api.allow_key_in_query)
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("api_key=")));
    // Every candidate is compared in full, in constant time, so the answer's timing says
    // nothing about the key.
    [header_key, auth_key, query_key]
        .into_iter()
        .flatten()
        .fold(false, |ok, k| {
            chorus_protocol::secret::keys_match(k.as_bytes(), api.key.as_bytes()) | ok
        })
}

async fn call(
    State(node): State<Arc<Node>>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&node, &headers, query.as_deref()) {
        return json(
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"code":101,"message":"unauthorized"}}"#.into(),
        );
    }
    let started = Instant::now();
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        &body[..]
    };
    let outcome = match std::str::from_utf8(body) {
        Ok(params) if method == "batch" => batch(&node, params).await,
        Ok(params) => dispatch(&node, &method, params)
            .await
            .map(|r| format!("{{\"result\":{r}}}")),
        Err(_) => Err(CommandError::BadRequest("body is not utf-8".into())),
    };
    if !matches!(outcome, Err(CommandError::UnknownMethod(_))) {
        node.metrics
            .api_command_duration
            .with_label_values(&[method.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    let transport_mode = headers
        .get("x-centrifugo-error-mode")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("transport"));
    match outcome {
        Ok(body) => json(StatusCode::OK, body),
        Err(CommandError::UnknownMethod(m)) => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": {"code": 104, "message": format!("method not found: {m}")}}).to_string(),
        ),
        Err(CommandError::BadRequest(m)) => {
            json(StatusCode::BAD_REQUEST, serde_json::json!({"error": {"code": 107, "message": format!("bad request: {m}")}}).to_string())
        }
        Err(CommandError::Protocol(e)) if transport_mode => json(transport_status(e.code), serde_json::to_string(&e).expect("invariant: errors serialize")),
        Err(CommandError::Protocol(e)) => json(StatusCode::OK, format!("{{\"error\":{}}}", serde_json::to_string(&e).expect("invariant: errors serialize"))),
    }
}

/// Centrifugo's mapping of error codes to HTTP statuses in transport error mode.
fn transport_status(code: u32) -> StatusCode {
    match code {
        102 | 104 => StatusCode::NOT_FOUND,
        107 | 108 => StatusCode::BAD_REQUEST,
        112 => StatusCode::RANGE_NOT_SATISFIABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Deserialize)]
struct BatchRequest {
    #[serde(default)]
    commands: Vec<BTreeMap<String, Box<RawValue>>>,
}

/// `{"commands":[{"publish":{...}}, ...]}` → `{"replies":[{"publish":{...}}, {"error":{...}}]}`,
/// processed in order.
async fn batch(node: &Node, params: &str) -> Result<String, CommandError> {
    let req: BatchRequest =
        serde_json::from_str(params).map_err(|e| CommandError::BadRequest(e.to_string()))?;
    let mut replies = Vec::with_capacity(req.commands.len());
    for cmd in &req.commands {
        let Some((method, params)) = cmd.iter().next().filter(|_| cmd.len() == 1) else {
            replies.push(r#"{"error":{"code":107,"message":"bad request"}}"#.to_owned());
            continue;
        };
        replies.push(match dispatch(node, method, params.get()).await {
            Ok(result) => format!(
                "{{{}:{result}}}",
                serde_json::to_string(method).expect("invariant: strings serialize")
            ),
            Err(CommandError::Protocol(e)) => format!(
                "{{\"error\":{}}}",
                serde_json::to_string(&e).expect("invariant: errors serialize")
            ),
            Err(CommandError::UnknownMethod(_)) => {
                r#"{"error":{"code":104,"message":"method not found"}}"#.to_owned()
            }
            Err(CommandError::BadRequest(_)) => {
                r#"{"error":{"code":107,"message":"bad request"}}"#.to_owned()
            }
        });
    }
    Ok(format!("{{\"replies\":[{}]}}", replies.join(",")))
}
