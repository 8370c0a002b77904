//! The OpenAPI 3.1 document, served at `/openapi.json` and checked in at
//! `docs/openapi.json`. A test calls every operation it lists on the real router (so nothing
//! documented is missing) and compares it with the checked-in copy (so a change to the API
//! shows in review).

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// One operation: summary, success status and description, request body, extra errors.
fn op(summary: &str, ok: &str, request: Option<Value>, errors: &[&str], secured: bool) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok.into(), json!({"description": "success"}));
    for e in errors {
        responses.insert(
            (*e).into(),
            json!({"description": describe(e), "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    let mut o = json!({"summary": summary, "responses": responses});
    if let Some(r) = request {
        o["requestBody"] = r;
    }
    if secured {
        o["security"] = json!([{"bearer": []}]);
    }
    o
}

fn describe(status: &str) -> &'static str {
    match status {
        "400" => "validation: malformed body, wrong type, out-of-range field",
        "401" => "unauthorized: missing, forged or expired token",
        "403" => "forbidden: not allowed for this role",
        "404" => "not found (or not a member)",
        "307" => "the store is S3: follow Location, a presigned URL",
        "409" => "conflict",
        "413" => "too large: over a size or pixel limit",
        "415" => "unsupported media type",
        "422" => "the upload is of an accepted type but does not decode",
        "416" => "range not satisfiable",
        "429" => "rate limited; see Retry-After",
        "503" => "a dependency is down; nothing was done, retry",
        _ => "error",
    }
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props, "additionalProperties": false})
}

pub fn spec() -> Value {
    let s = json!({"type": "string"});
    let chat_path =
        json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let member_path = json!([
        {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "user_id", "in": "path", "required": true, "schema": {"type": "string"}}
    ]);
    let std_errors = ["400", "401", "404"];
    let mut messages_get = op(
        "History page, newest first",
        "200",
        None,
        &["400", "401", "404", "503"],
        true,
    );
    messages_get["parameters"] = json!([
        {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "before", "in": "query", "schema": {"type": "string", "description": "a message id (ULID): older messages only"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}
    ]);
    let mut messages_post = op(
        "Send a text message (201 after Kafka acknowledged it)",
        "201",
        Some(body(obj(&["text"], json!({"text": s})))),
        &["400", "401", "404", "409", "429", "503"],
        true,
    );
    messages_post["parameters"] = json!([
        {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 128}}
    ]);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Chorus API", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Error": obj(&["error"], json!({"error": obj(&["code", "message"], json!({
                "code": {"type": "string", "enum": ["validation", "unauthorized", "forbidden", "not_found",
                    "method_not_allowed", "conflict", "rate_limited", "unavailable", "internal",
                    "too_large", "unsupported_media_type", "range_not_satisfiable"]},
                "message": s}))}))}
        },
        "paths": {
            "/auth/register": {"post": op("Create an account", "201",
                Some(body(obj(&["username", "password"], json!({"username": s, "password": s, "display_name": s})))),
                &["400", "409"], false)},
            "/auth/login": {"post": op("Log in: access token, refresh token (body and cookie)", "200",
                Some(body(obj(&["username", "password"], json!({"username": s, "password": s})))),
                &["400", "401", "429"], false)},
            "/auth/refresh": {"post": op("Rotate a refresh token (body or cookie)", "200", None, &["400", "401"], false)},
            "/auth/logout": {"post": op("Revoke a refresh token (body or cookie)", "204", None, &["400", "401"], false)},
            "/me": {"get": op("The caller", "200", None, &["401"], true)},
            "/hub/connection-token": {"post": op("A connection token for the hub", "200", None, &["401", "503"], true)},
            "/hub/subscribe": {"post": op("The hub's subscribe proxy (Centrifugo's request and result shapes)", "200",
                Some(body(json!({"type": "object", "required": ["channel"], "properties": {"user": s, "channel": s, "client": s}}))),
                &["400", "401"], false)},
            "/chats": {
                "post": op("Create a chat; the caller owns it", "201",
                    Some(body(obj(&["title"], json!({"title": s, "members": {"type": "array", "items": s}})))),
                    &["400", "401"], true),
                "get": op("The caller's chats", "200", None, &["401"], true)
            },
            "/chats/{id}": {
                "parameters": chat_path,
                "get": op("A chat and its members", "200", None, &std_errors, true),
                "patch": op("Rename (owner, admin)", "200", Some(body(obj(&["title"], json!({"title": s})))),
                    &["400", "401", "403", "404"], true),
                "delete": op("Delete (owner)", "204", None, &["401", "403", "404"], true)
            },
            "/chats/{id}/members": {
                "parameters": chat_path,
                "post": op("Add a member (owner, admin)", "201",
                    Some(body(obj(&["user_id"], json!({"user_id": s, "role": {"type": "string", "enum": ["member", "admin"]}})))),
                    &["400", "401", "403", "404", "409"], true)
            },
            "/chats/{id}/members/{user_id}": {
                "parameters": member_path,
                "delete": op("Remove a member (owner, admin); removing oneself is leaving", "204", None,
                    &["401", "403", "404", "409"], true),
                "patch": op("Set a member's role (owner)", "200",
                    Some(body(obj(&["role"], json!({"role": {"type": "string", "enum": ["member", "admin"]}})))),
                    &["400", "401", "403", "404", "409"], true)
            },
            "/chats/{id}/leave": {"parameters": chat_path, "post": op("Leave the chat", "204", None, &["401", "404", "409"], true)},
            "/chats/{id}/subscription-token": {"parameters": chat_path,
                "post": op("A subscription token for chat:<id> (members)", "200", None, &["401", "404", "503"], true)},
            "/chats/{id}/messages": {"get": messages_get, "post": messages_post},
            "/chats/{id}/images": {"parameters": chat_path, "post": {
                "summary": "Send an image (multipart: file, optional text); JPEG, PNG, WebP or GIF",
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}, "text": s}}}}},
                "responses": op("", "201", None, &["400", "401", "404", "409", "413", "415", "429", "503"], true)["responses"],
                "security": [{"bearer": []}]}},
            "/chats/{id}/voice": {"parameters": chat_path, "post": {
                "summary": "Send a voice message (multipart: file, optional text); WAV, FLAC, MP3, OGG (Vorbis or Opus) or WebM (Opus). Its transcript follows on chat:<id> as message.transcribed",
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}, "text": s}}}}},
                "responses": op("", "201", None, &["400", "401", "404", "409", "413", "415", "422", "429", "503"], true)["responses"],
                "security": [{"bearer": []}]}},
            "/media/{key}": {"get": {
                "summary": "A blob, to members of its chat; one byte range per request. When the store is S3: 307 to a presigned URL (body {url, expires_in}), which serves ranges itself",
                "parameters": [{"name": "key", "in": "path", "required": true, "schema": s},
                               {"name": "Range", "in": "header", "schema": s}],
                "responses": op("", "200", None, &["307", "401", "404", "416"], true)["responses"],
                "security": [{"bearer": []}]}},
            "/openapi.json": {"get": op("This document", "200", None, &[], false)},
            "/health": {"get": op("Dependencies: postgres, redis, kafka, state consumer", "200", None, &["503"], false)},
            "/metrics": {"get": op("Prometheus metrics", "200", None, &[], false)}
        }
    })
}

pub async fn document() -> Response {
    Json(spec()).into_response()
}
