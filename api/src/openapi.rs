//! The OpenAPI 3.1 document, served at `/openapi.json` and checked in at
//! `docs/openapi.json`. A test calls every operation it lists on the real router (so nothing
//! documented is missing) and compares it with the checked-in copy (so a change to the API
//! shows in review).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;
use crate::text::{BODY_PATTERN, LINE_PATTERN};

/// A path or body id of a chat or a user: what the server parses (positive, and short enough
/// for an i64).
const ID_PATTERN: &str = "^[1-9][0-9]{0,17}$";

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
        "202" => "committed, but Kafka did not acknowledge it in time: the relay publishes it with this message id",
        "416" => "range not satisfiable",
        "429" => "rate limited; see Retry-After",
        "503" => "a dependency is down; nothing was done, retry",
        "507" => "the media store is full; nothing was stored or sent, retry later",
        _ => "error",
    }
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props, "additionalProperties": false})
}

/// Names an operation, so links can point at it.
fn named(mut o: Value, id: &str) -> Value {
    o["operationId"] = json!(id);
    o
}

/// The document for the default limits.
pub fn spec() -> Value {
    spec_for(&crate::config::Limits::default())
}

/// The document, stating every constraint the server enforces with these limits.
pub fn spec_for(limits: &crate::config::Limits) -> Value {
    let s = json!({"type": "string"});
    let id = json!({"type": "string", "pattern": ID_PATTERN});
    let line = |max: usize| json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": LINE_PATTERN});
    let title = line(100);
    let text = json!({"type": "string", "minLength": 1, "maxLength": limits.max_text_chars, "pattern": BODY_PATTERN});
    let role = json!({"type": "string", "enum": ["member", "admin"]});
    let chat_path = json!([{"name": "id", "in": "path", "required": true, "schema": id}]);
    let member_path = json!([
        {"name": "id", "in": "path", "required": true, "schema": id},
        {"name": "user_id", "in": "path", "required": true, "schema": id}
    ]);
    let idempotency = json!({"name": "Idempotency-Key", "in": "header",
        "schema": {"type": "string", "pattern": "^[!-~]{1,128}$"}});
    let upload = |summary: &str, errors: &[&str]| {
        let mut responses = op("", "201", None, errors, true)["responses"].clone();
        responses["202"] = json!({"description": describe("202")});
        json!({
            "summary": summary,
            "parameters": [idempotency],
            "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"},
                               "text": {"type": "string", "maxLength": limits.max_text_chars}}}}}},
            "responses": responses,
            "security": [{"bearer": []}]})
    };
    // From a created chat (its `id`) to what can be done with it: schemathesis follows these.
    let chat_links = json!({
        "GetChat": {"operationId": "getChat", "parameters": {"id": "$response.body#/id"}},
        "RenameChat": {"operationId": "renameChat", "parameters": {"id": "$response.body#/id"}},
        "AddMember": {"operationId": "addMember", "parameters": {"id": "$response.body#/id"}},
        "SendMessage": {"operationId": "sendMessage", "parameters": {"id": "$response.body#/id"}},
        "History": {"operationId": "history", "parameters": {"id": "$response.body#/id"}},
        "DeleteChat": {"operationId": "deleteChat", "parameters": {"id": "$response.body#/id"}}
    });
    let mut create_chat = named(
        op(
            "Create a chat; the caller owns it",
            "201",
            Some(body(obj(
                &["title"],
                json!({"title": title,
                "members": {"type": "array", "maxItems": 1000, "items": id}}),
            ))),
            &["400", "401", "404"],
            true,
        ),
        "createChat",
    );
    create_chat["responses"]["201"]["links"] = chat_links;
    let std_errors = ["400", "401", "404"];
    let mut lookup = named(
        op(
            "A user by username, to add them to a chat",
            "200",
            None,
            &std_errors,
            true,
        ),
        "lookupUser",
    );
    lookup["parameters"] = json!([{"name": "username", "in": "query", "required": true,
        "schema": {"type": "string", "pattern": "^[a-z0-9_]{3,32}$"}}]);
    let mut messages_get = named(
        op(
            "History page, newest first",
            "200",
            None,
            &["400", "401", "404", "503"],
            true,
        ),
        "history",
    );
    messages_get["parameters"] = json!([
        {"name": "id", "in": "path", "required": true, "schema": id},
        {"name": "before", "in": "query", "schema": {"type": "string",
            "pattern": "^[0-7][0-9A-HJKMNP-TV-Z]{25}$", "description": "a message id (ULID): older messages only"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}
    ]);
    let mut messages_post = named(
        op(
            "Send a text message: 201 once Kafka acknowledged it, 202 when it is committed and the relay publishes it",
            "201",
            Some(body(obj(&["text"], json!({"text": text})))),
            &["400", "401", "404", "409", "429", "503"],
            true,
        ),
        "sendMessage",
    );
    messages_post["responses"]["202"] = json!({"description": describe("202")});
    messages_post["parameters"] = json!([
        {"name": "id", "in": "path", "required": true, "schema": id},
        idempotency
    ]);
    // The hub's proxies: Centrifugo's request and result shapes, the proxy key in a header.
    // Open objects: Centrifugo's requests carry more fields than these, and more may come.
    let hub_proxy = |summary: &str, required: &[&str], properties: Value| {
        let mut o = op(
            summary,
            "200",
            Some(body(
                json!({"type": "object", "required": required, "properties": properties}),
            )),
            &["400", "401"],
            false,
        );
        o["parameters"] =
            json!([{"name": "X-Chorus-Proxy-Key", "in": "header", "required": true, "schema": s}]);
        o
    };
    let channel_request = json!({"user": s, "channel": s, "client": s});
    let proxy = hub_proxy(
        "The hub's subscribe proxy: members of chat <id> on chat:<id> and typing:<id>",
        &["channel"],
        channel_request.clone(),
    );
    let publish_proxy = hub_proxy(
        "The hub's publish proxy: members' typing indicators on typing:<id>",
        &["channel"],
        channel_request,
    );
    let connect_proxy = hub_proxy(
        "The hub's connect proxy: the user of the chorus_access cookie",
        &["client"],
        json!({"client": s}),
    );
    let refresh_proxy = hub_proxy(
        "The hub's refresh proxy: extended while the user has a live session",
        &["client", "user"],
        json!({"client": s, "user": s}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Chorus API", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Error": obj(&["error"], json!({"error": obj(&["code", "message"], json!({
                "code": {"type": "string", "enum": ["validation", "unauthorized", "forbidden", "not_found",
                    "method_not_allowed", "conflict", "rate_limited", "unavailable", "internal",
                    "too_large", "unsupported_media_type", "unprocessable", "range_not_satisfiable"]},
                "message": s}))}))}
        },
        "paths": {
            "/auth/register": {"post": op("Create an account", "201",
                Some(body(obj(&["username", "password"], json!({
                    "username": {"type": "string", "pattern": "^[a-z0-9_]{3,32}$"},
                    "password": {"type": "string", "minLength": 8, "maxLength": 128},
                    "display_name": {"type": ["string", "null"], "minLength": 1, "maxLength": 64, "pattern": LINE_PATTERN}})))),
                &["400", "409", "429"], false)},
            "/auth/login": {"post": op("Log in: access token, refresh token (body and cookie)", "200",
                Some(body(obj(&["username", "password"], json!({"username": s, "password": s})))),
                &["400", "401", "429"], false)},
            "/auth/refresh": {"post": op("Rotate a refresh token (body or cookie); one reused after rotation revokes its session, on the hub too (503 when the hub cannot be told)", "200", None, &["400", "401", "429", "503"], false)},
            "/auth/logout": {"post": op("Revoke a refresh token's session (body or cookie); its hub tokens and connections end before it answers, else 503 (revoked; ask again)", "204", None, &["400", "401", "503"], false)},
            "/me": {"get": op("The caller", "200", None, &["401"], true)},
            "/users": {"get": lookup},
            "/config": {"get": op("What a browser needs: the hub's public WebSocket URL", "200", None, &[], false)},
            "/hub/connection-token": {"post": op("A connection token for the hub, for a live sign-in session only", "200", None, &["401", "503"], true)},
            "/hub/subscribe": {"post": proxy},
            "/hub/publish": {"post": publish_proxy},
            "/hub/connect": {"post": connect_proxy},
            "/hub/refresh": {"post": refresh_proxy},
            "/chats": {
                "post": create_chat,
                "get": op("The caller's chats", "200", None, &["401"], true)
            },
            "/chats/{id}": {
                "parameters": chat_path,
                "get": named(op("A chat and its members", "200", None, &std_errors, true), "getChat"),
                "patch": named(op("Rename (owner, admin)", "200", Some(body(obj(&["title"], json!({"title": title})))),
                    &["400", "401", "403", "404"], true), "renameChat"),
                "delete": named(op("Delete (owner); every member is cut off on the hub before it answers, else 503 (the deletion is saved and retried)", "204", None, &["401", "403", "404", "503"], true), "deleteChat")
            },
            "/chats/{id}/members": {
                "parameters": chat_path,
                "post": named(op("Add a member (owner, admin; only the owner adds an admin); 404 for a user that does not exist", "201",
                    Some(body(obj(&["user_id"], json!({"user_id": id, "role": {"type": ["string", "null"], "enum": ["member", "admin", null]}})))),
                    &["400", "401", "403", "404", "409"], true), "addMember")
            },
            "/chats/{id}/members/{user_id}": {
                "parameters": member_path,
                "delete": op("Remove a member (owner, admin); removing oneself is leaving. The member is cut off on the hub before it answers, else 503 (the removal is saved and retried)", "204", None,
                    &["401", "403", "404", "409", "503"], true),
                "patch": op("Set a member's role (owner)", "200",
                    Some(body(obj(&["role"], json!({"role": role})))),
                    &["400", "401", "403", "404", "409"], true)
            },
            "/chats/{id}/leave": {"parameters": chat_path, "post": op("Leave the chat; cut off on the hub before it answers, else 503 (saved and retried)", "204", None, &["401", "404", "409", "503"], true)},
            "/chats/{id}/subscription-token": {"parameters": chat_path,
                "post": op("A subscription token for chat:<id> (members), only with hub.subscription_tokens on: otherwise 403, as the subscribe proxy decides", "200", None, &["401", "403", "404", "503"], true)},
            "/chats/{id}/messages": {"get": messages_get, "post": messages_post},
            "/chats/{id}/images": {"parameters": chat_path, "post": upload(
                "Send an image (multipart: file, optional text); JPEG, PNG, WebP or GIF",
                &["400", "401", "404", "409", "413", "415", "429", "503", "507"])},
            "/chats/{id}/voice": {"parameters": chat_path, "post": upload(
                "Send a voice message (multipart: file, optional text); WAV, FLAC, MP3, OGG (Vorbis or Opus) or WebM (Opus). Its transcript follows on chat:<id> as message.transcribed",
                &["400", "401", "404", "409", "413", "415", "422", "429", "503", "507"])},
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

pub async fn document(State(s): State<AppState>) -> Response {
    Json(spec_for(&s.config.limits)).into_response()
}
