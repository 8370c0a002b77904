//! Chats and membership against real PostgreSQL and Redis: roles, the outbox rows each change
//! writes, the last-admin race, the membership cache and the subscribe proxy, rate limits,
//! and bad input (always a JSON 4xx, never a 500).
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use chorus_protocol::event::ChatEvent;
use chorus_protocol::state::{StateBody, StateEvent};
use common::TestApi;
use fred::prelude::*;
use serde_json::{json, Value};
use sqlx::Row;

async fn chat(api: &TestApi, owner: &str, members: &[&str]) -> String {
    let (s, b) = api
        .req(
            "POST",
            "/chats",
            Some(owner),
            Some(json!({"title": "team", "members": members})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

/// The outbox's rows in order: (topic, event type).
async fn outbox(api: &TestApi) -> Vec<(String, Value)> {
    sqlx::query("SELECT topic, payload FROM outbox ORDER BY id")
        .fetch_all(&api.state.db)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let payload: Vec<u8> = r.get("payload");
            (r.get("topic"), serde_json::from_slice(&payload).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn roles_decide_and_every_change_writes_its_events() {
    let api = TestApi::start_with_hub(|_| {}).await;
    let (_, ann) = api.user("ann").await;
    let (bob_id, bob) = api.user("bob").await;
    let (carol_id, _) = api.user("carol").await;
    let (_, eve) = api.user("eve").await;
    let id = chat(&api, &ann, &[&bob_id]).await;

    // A member neither renames nor adds; an outsider does not even see the chat.
    let (s, b) = api
        .req(
            "PATCH",
            &format!("/chats/{id}"),
            Some(&bob),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (s, _) = api
        .req(
            "POST",
            &format!("/chats/{id}/members"),
            Some(&bob),
            Some(json!({"user_id": carol_id})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = api
        .req("GET", &format!("/chats/{id}"), Some(&eve), None)
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // The owner adds an admin, renames; a second add is a conflict.
    let (s, b) = api
        .req(
            "POST",
            &format!("/chats/{id}/members"),
            Some(&ann),
            Some(json!({"user_id": carol_id, "role": "admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = api
        .req(
            "POST",
            &format!("/chats/{id}/members"),
            Some(&ann),
            Some(json!({"user_id": carol_id})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = api
        .req(
            "PATCH",
            &format!("/chats/{id}"),
            Some(&ann),
            Some(json!({"title": "renamed"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = api
        .req("GET", &format!("/chats/{id}"), Some(&bob), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["title"], "renamed");
    let roles: Vec<&str> = b["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["owner", "member", "admin"]);
    let (_, list) = api.req("GET", "/chats", Some(&bob), None).await;
    assert_eq!(list["chats"][0]["id"], id.as_str());

    // Bob removed; then the owner deletes the chat.
    let (s, _) = api
        .req(
            "DELETE",
            &format!("/chats/{id}/members/{bob_id}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api
        .req("DELETE", &format!("/chats/{id}"), Some(&bob), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .req("DELETE", &format!("/chats/{id}"), Some(&ann), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Every committed change left its events, in order; refused requests left none.
    let rows = outbox(&api).await;
    let state: Vec<StateEvent> = rows
        .iter()
        .filter(|(t, _)| t == "chat.state")
        .map(|(_, v)| StateEvent::decode(v.to_string().as_bytes()).unwrap())
        .collect();
    let kinds: Vec<&str> = state
        .iter()
        .map(|e| match &e.body {
            StateBody::ChatCreated { .. } => "chat.created",
            StateBody::ChatUpdated { .. } => "chat.updated",
            StateBody::ChatDeleted { .. } => "chat.deleted",
            StateBody::MemberAdded { .. } => "member.added",
            StateBody::MemberRemoved { .. } => "member.removed",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "chat.created",
            "member.added",
            "member.added",
            "chat.updated",
            "member.removed",
            "chat.deleted"
        ]
    );
    let live: Vec<ChatEvent> = rows
        .iter()
        .filter(|(t, _)| t == "chat.events")
        .map(|(_, v)| ChatEvent::decode(v.to_string().as_bytes()).unwrap())
        .collect();
    assert_eq!(
        live.len(),
        5,
        "a chat.updated for every change but the creation"
    );
    assert!(live
        .iter()
        .all(|e| e.message_id().is_none() && e.chat_id == id));
    api.stop().await;
}

/// An admin tries every route to making someone an admin: a role change, adding a new member
/// as admin, and removing a member to add them back as admin. Each is refused, and the roles
/// stay as they were; only the owner's add makes an admin.
#[tokio::test]
async fn only_the_owner_makes_admins_by_any_route() {
    let api = TestApi::start_with_hub(|_| {}).await;
    let (ann_id, ann) = api.user("ann").await;
    let (carol_id, carol) = api.user("carol").await;
    let (bob_id, _) = api.user("bob").await;
    let (dave_id, _) = api.user("dave").await;
    let id = chat(&api, &ann, &[&bob_id]).await;
    let add = |who: &str, user: &str, role: &str| {
        let (who, body) = (who.to_owned(), json!({"user_id": user, "role": role}));
        let (api, path) = (&api, format!("/chats/{id}/members"));
        async move { api.req("POST", &path, Some(&who), Some(body)).await }
    };
    let (s, b) = add(&ann, &carol_id, "admin").await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    let (s, b) = api
        .req(
            "PATCH",
            &format!("/chats/{id}/members/{bob_id}"),
            Some(&carol),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "role change by an admin: {b}");
    let (s, b) = add(&carol, &dave_id, "admin").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a new member added as admin: {b}");
    let (s, _) = api
        .req(
            "DELETE",
            &format!("/chats/{id}/members/{bob_id}"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "admins do remove members");
    let (s, b) = add(&carol, &bob_id, "admin").await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "removed, then added back as admin: {b}"
    );
    // As plain members both may be added by the admin.
    assert_eq!(add(&carol, &bob_id, "member").await.0, StatusCode::CREATED);
    assert_eq!(add(&carol, &dave_id, "member").await.0, StatusCode::CREATED);

    let (_, b) = api
        .req("GET", &format!("/chats/{id}"), Some(&ann), None)
        .await;
    let mut roles: Vec<(String, String)> = b["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    roles.sort();
    let mut want: Vec<(String, String)> = [
        (&ann_id, "owner"),
        (&carol_id, "admin"),
        (&bob_id, "member"),
        (&dave_id, "member"),
    ]
    .iter()
    .map(|(u, r)| (u.to_string(), r.to_string()))
    .collect();
    want.sort();
    assert_eq!(roles, want, "{b}");
    api.stop().await;
}

#[tokio::test]
async fn two_admins_leaving_at_once_cannot_both_go() {
    let api = TestApi::start_with_hub(|_| {}).await;
    let (_, ann) = api.user("ann").await;
    let (bob_id, bob) = api.user("bob").await;
    let (carol_id, _) = api.user("carol").await;
    for _ in 0..5 {
        let id = chat(&api, &ann, &[&carol_id]).await;
        let (s, _) = api
            .req(
                "POST",
                &format!("/chats/{id}/members"),
                Some(&ann),
                Some(json!({"user_id": bob_id, "role": "admin"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let leave = format!("/chats/{id}/leave");
        let (a, b) = tokio::join!(
            api.req("POST", &leave, Some(&ann), None),
            api.req("POST", &leave, Some(&bob), None)
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::NO_CONTENT, StatusCode::CONFLICT],
            "{a:?} {b:?}"
        );
        let managers: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM chat_members WHERE chat_id = $1 AND role IN ('owner', 'admin')",
        )
        .bind(id.parse::<i64>().unwrap())
        .fetch_one(&api.state.db)
        .await
        .unwrap();
        assert_eq!(managers, 1, "the chat keeps a manager");
    }
    api.stop().await;
}

#[tokio::test]
async fn the_proxy_follows_membership_at_once_past_the_cache() {
    let api = TestApi::start_with_hub(|c| c.hub.proxy_key = "pk".into()).await;
    let (_, ann) = api.user("ann").await;
    let (bob_id, _) = api.user("bob").await;
    let id = chat(&api, &ann, &[&bob_id]).await;
    let ask = |user: String| {
        let api = &api;
        let channel = format!("chat:{id}");
        async move {
            let (s, b, _) = api
                .call(
                    axum::http::Request::post("/hub/subscribe")
                        .header("content-type", "application/json")
                        .header("x-chorus-proxy-key", "pk")
                        .body(axum::body::Body::from(
                            json!({"client": "c1", "transport": "websocket", "protocol": "json",
                                   "encoding": "json", "user": user, "channel": channel})
                            .to_string(),
                        ))
                        .unwrap(),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b
        }
    };
    let r = ask(bob_id.clone()).await;
    assert_eq!(r["result"]["info"]["role"], "member", "{r}");
    let key = format!("{}:member:{id}:{bob_id}", api.state.config.redis.prefix);

    let (s, _) = api
        .req(
            "DELETE",
            &format!("/chats/{id}/members/{bob_id}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // A reader that read PostgreSQL just before the removal committed writes its "member" back
    // after the removal dropped the cache entry: the proxy must not believe it.
    api.state
        .redis
        .set::<(), _, _>(&key, "member", None, None, false)
        .await
        .unwrap();
    let r = ask(bob_id.clone()).await;
    assert_eq!(
        r["error"]["code"], 103,
        "refused at once, past a stale cache: {r}"
    );
    let (s, _) = api
        .req(
            "POST",
            &format!("/chats/{id}/members"),
            Some(&ann),
            Some(json!({"user_id": bob_id})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let r = ask(bob_id.clone()).await;
    assert_eq!(
        r["result"]["info"]["role"], "member",
        "accepted at once: {r}"
    );
    // Not a chat channel, not a user: refused. No key: 401.
    let r = ask("not-a-user".into()).await;
    assert_eq!(r["error"]["code"], 103);
    let (s, _, _) = api
        .call(
            axum::http::Request::post("/hub/subscribe")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    json!({"user": bob_id, "channel": format!("chat:{id}")}).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    api.stop().await;
}

#[tokio::test]
async fn login_is_rate_limited_with_retry_after() {
    let api = TestApi::start(|c| c.limits.login_per_minute = 3).await;
    api.user("ann").await; // one login
    for _ in 0..2 {
        let (s, _, _) = api
            .post(
                "/auth/login",
                json!({"username": "ann", "password": "wrong-password"}),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let resp = chorus_api::app::app(api.state.clone());
    use tower::ServiceExt;
    let r = resp
        .oneshot(
            axum::http::Request::post("/auth/login")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    json!({"username": "ann", "password": "password-1"}).to_string(),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    // Another username is not limited.
    api.user("bob").await;
    api.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx_never_a_500() {
    let api = TestApi::start(|_| {}).await;
    let (_, ann) = api.user("ann").await;
    let id = chat(&api, &ann, &[]).await;
    let long = "x".repeat(5000);
    let cases: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("POST", "/chats".into(), Some(json!({"title": 5})), 400),
        ("POST", "/chats".into(), Some(json!({"title": ""})), 400),
        (
            "POST",
            "/chats".into(),
            Some(json!({"title": "t", "extra": 1})),
            400,
        ),
        (
            "POST",
            "/chats".into(),
            Some(json!({"title": "t", "members": ["x"]})),
            400,
        ),
        (
            "POST",
            "/chats".into(),
            // A well-formed id of no user: the thing named is missing (404), the request is
            // not malformed.
            Some(json!({"title": "t", "members": ["999999"]})),
            404,
        ),
        (
            "POST",
            "/chats".into(),
            Some(json!({"title": "t", "members": ["not-an-id"]})),
            400,
        ),
        ("POST", "/chats".into(), Some(json!({"title": long})), 400),
        ("GET", "/chats/abc".into(), None, 404),
        ("GET", "/chats/-1".into(), None, 404),
        ("GET", "/chats/99999999".into(), None, 404),
        (
            "POST",
            format!("/chats/{id}/messages"),
            Some(json!({"text": ""})),
            400,
        ),
        (
            "POST",
            format!("/chats/{id}/messages"),
            Some(json!({"text": long})),
            400,
        ),
        (
            "POST",
            format!("/chats/{id}/messages"),
            Some(json!({"txt": "hi"})),
            400,
        ),
        ("GET", format!("/chats/{id}/messages?limit=0"), None, 400),
        ("GET", format!("/chats/{id}/messages?limit=abc"), None, 400),
        (
            "GET",
            format!("/chats/{id}/messages?before=not-a-ulid"),
            None,
            400,
        ),
        ("GET", format!("/chats/{id}/messages?colour=red"), None, 400),
        (
            "PATCH",
            format!("/chats/{id}/members/abc"),
            Some(json!({"role": "owner"})),
            400,
        ),
        ("PUT", "/chats".into(), None, 405),
        ("GET", "/nowhere".into(), None, 404),
    ];
    for (method, path, body, want) in cases {
        let (s, b) = api.req(method, &path, Some(&ann), body.clone()).await;
        assert_eq!(s.as_u16(), want, "{method} {path} {body:?}: {b}");
        assert!(b["error"]["code"].is_string(), "{method} {path}: {b}");
    }
    // Forged and missing tokens.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "1", "typ": "access", "exp": 9_999_999_999_u64, "iat": 0}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-not-the-secret-!!"),
    )
    .unwrap();
    for token in [Some(forged.as_str()), Some("garbage"), None] {
        let (s, b) = api.req("GET", "/chats", token, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    }
    // A body over 64 KB.
    let (s, b) = api
        .req(
            "POST",
            "/chats",
            Some(&ann),
            Some(json!({"title": "x".repeat(70_000)})),
        )
        .await;
    assert!(s.is_client_error(), "{s} {b}");
    assert!(b["error"]["code"].is_string());
    api.stop().await;
}
