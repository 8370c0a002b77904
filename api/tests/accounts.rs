//! Accounts and auth against a real PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{TestApi, SECRET};
use serde_json::{json, Value};

async fn register_and_login(api: &TestApi, user: &str) -> Value {
    let (s, b, _) = api
        .post(
            "/auth/register",
            json!({"username": user, "password": "correct horse", "display_name": "Ann"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b, cookie) = api
        .post(
            "/auth/login",
            json!({"username": user, "password": "correct horse"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let cookie = cookie.expect("a refresh cookie for browsers");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/auth"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(cookie.starts_with(&format!(
        "chorus_refresh={}",
        b["refresh_token"].as_str().unwrap()
    )));
    b
}

#[tokio::test]
async fn register_login_and_me() {
    let api = TestApi::start(|_| {}).await;
    let tokens = register_and_login(&api, "ann").await;
    let (s, me) = api
        .get("/me", tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (me["username"].as_str(), me["display_name"].as_str()),
        (Some("ann"), Some("Ann"))
    );

    let (s, b, _) = api
        .post(
            "/auth/register",
            json!({"username": "ann", "password": "another one"}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (s, b, _) = api
        .post(
            "/auth/login",
            json!({"username": "ann", "password": "wrong password"}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (s, _, _) = api
        .post(
            "/auth/login",
            json!({"username": "nobody", "password": "wrong password"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The stored hash is argon2id, not the password.
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'ann'")
            .fetch_one(&api.state.db)
            .await
            .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    api.stop().await;
}

#[tokio::test]
async fn refresh_rotates_allows_a_grace_window_and_revokes_the_family_on_reuse() {
    let api = TestApi::start_with_hub(|c| c.refresh_grace = Duration::from_secs(1)).await;
    let t0 = register_and_login(&api, "bob").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (s, b, _) = api
        .post("/auth/refresh", json!({"refresh_token": t0}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t1 = b["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(t0, t1, "rotated");
    assert_eq!(
        api.get("/me", b["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    // Within the grace window the old token still rotates (two tabs at once).
    let (s, b, _) = api
        .post("/auth/refresh", json!({"refresh_token": t0}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let sibling = b["refresh_token"].as_str().unwrap().to_owned();

    // After it, reuse is theft: refused, and the whole family with it.
    common::pause(1_500).await;
    let (s, b, _) = api
        .post("/auth/refresh", json!({"refresh_token": t0}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("reused"));
    for t in [&t1, &sibling] {
        let (s, b, _) = api.post("/auth/refresh", json!({"refresh_token": t})).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    }
    api.stop().await;
}

#[tokio::test]
async fn the_cookie_refreshes_and_logout_revokes() {
    let api = TestApi::start_with_hub(|_| {}).await;
    let t0 = register_and_login(&api, "cyd").await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let with_cookie = |path: &str, token: &str| {
        Request::post(path)
            .header("cookie", format!("theme=dark; chorus_refresh={token}"))
            .body(Body::empty())
            .unwrap()
    };
    let (s, b, _) = api.call(with_cookie("/auth/refresh", &t0)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t1 = b["refresh_token"].as_str().unwrap().to_owned();
    let (s, _, cookie) = api.call(with_cookie("/auth/logout", &t1)).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(cookie.unwrap().contains("Max-Age=0"));
    let (s, b, _) = api.call(with_cookie("/auth/refresh", &t1)).await;
    assert_eq!(
        (s, b["error"]["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("refresh token revoked"))
    );
    api.stop().await;
}

#[tokio::test]
async fn bad_input_and_bad_tokens_get_a_json_4xx_never_a_500() {
    let api = TestApi::start(|c| c.access_ttl = Duration::from_secs(1)).await;
    let tokens = register_and_login(&api, "dee").await;
    let raw = |path: &str, ctype: &str, body: String| {
        Request::post(path)
            .header("content-type", ctype)
            .body(Body::from(body))
            .unwrap()
    };
    let cases = vec![
        raw("/auth/register", "application/json", "{not json".into()),
        raw("/auth/register", "application/json", json!({"username": 7, "password": "x"}).to_string()),
        raw("/auth/register", "application/json", json!({"username": "ok_name"}).to_string()),
        raw("/auth/register", "application/json", json!({"username": "ok_name", "password": "long enough", "admin": true}).to_string()),
        raw("/auth/register", "text/plain", json!({"username": "ok_name", "password": "long enough"}).to_string()),
        raw("/auth/register", "application/json", json!({"username": "Bad Name", "password": "long enough"}).to_string()),
        raw("/auth/register", "application/json", json!({"username": "ok_name", "password": "short"}).to_string()),
        raw("/auth/register", "application/json", json!({"username": "ok_name", "password": "x".repeat(129)}).to_string()),
        raw("/auth/register", "application/json", json!({"username": "ok_name", "password": "long enough", "display_name": "x".repeat(65)}).to_string()),
        raw("/auth/login", "application/json", json!({"username": "x".repeat(100_000), "password": "p"}).to_string()),
        raw("/auth/refresh", "application/json", json!({"refresh_token": 5}).to_string()),
    ];
    for req in cases {
        let what = format!("{} {:?}", req.uri(), req.headers().get("content-type"));
        let (s, b, _) = api.call(req).await;
        assert!(s.is_client_error(), "{what}: {s} {b}");
        assert!(b["error"]["code"].is_string(), "{what}: {b}");
    }
    let (s, _, _) = api
        .post("/auth/refresh", json!({"refresh_token": "forged"}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let access = tokens["access_token"].as_str().unwrap();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "1", "typ": "access", "iat": 0, "exp": 9_999_999_999_u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-not-the-secret-xx"),
    )
    .unwrap();
    let wrong_kind = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "1", "typ": "refresh", "iat": 0, "exp": 9_999_999_999_u64}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    for bad in [forged.as_str(), wrong_kind.as_str(), "garbage", ""] {
        let (s, b) = api.get("/me", bad).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "{bad}"
        );
    }
    let (s, b, _) = api
        .call(Request::get("/me").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    // Expired: the access token lives one second here.
    assert_eq!(api.get("/me", access).await.0, StatusCode::OK);
    common::pause(2_100).await;
    let (s, b) = api.get("/me", access).await;
    assert_eq!(
        (s, b["error"]["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("access token expired"))
    );
    api.stop().await;
}

/// NUL and other control characters in a display name or a chat title (PostgreSQL refuses
/// NUL in TEXT, which reached a 500) get a 400, and nothing is stored.
#[tokio::test]
async fn control_characters_in_names_and_titles_are_a_400_not_a_500() {
    let api = TestApi::start(|_| {}).await;
    for name in ["nul\u{0}inside", "new\nline", "\u{7f}"] {
        let (s, b, _) = api
            .post(
                "/auth/register",
                json!({"username": "ctl_user", "password": "long enough", "display_name": name}),
            )
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("validation")),
            "{name:?}: {b}"
        );
    }
    let tokens = register_and_login(&api, "ctl_user").await;
    let access = tokens["access_token"].as_str().unwrap();
    let (s, b) = api
        .req(
            "POST",
            "/chats",
            Some(access),
            Some(json!({"title": "a\u{0}b"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, chat) = api
        .req(
            "POST",
            "/chats",
            Some(access),
            Some(json!({"title": "fine"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{chat}");
    let id = chat["id"].as_str().unwrap();
    let (s, b) = api
        .req(
            "PATCH",
            &format!("/chats/{id}"),
            Some(access),
            Some(json!({"title": "bad\u{0}"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = api
        .req(
            "POST",
            &format!("/chats/{id}/messages"),
            Some(access),
            Some(json!({"text": "x\u{0}y"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (_, got) = api.get(&format!("/chats/{id}"), access).await;
    assert_eq!(got["title"], "fine", "{got}");
    api.stop().await;
}

/// Registration (an argon2 hash each) and refresh are throttled per client address: past the
/// limit, 429 with Retry-After, and no user is created.
#[tokio::test]
async fn registration_and_refresh_are_rate_limited() {
    let api = TestApi::start(|c| {
        c.limits.register_per_minute = 2;
        c.limits.refresh_per_minute = 2;
    })
    .await;
    for n in 0..2 {
        let (s, b, _) = api
            .post(
                "/auth/register",
                json!({"username": format!("rl_{n}"), "password": "long enough"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let req = Request::post("/auth/register")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"username": "rl_2", "password": "long enough"}).to_string(),
        ))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(chorus_api::app::app(api.state.clone()), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&api.state.db)
        .await
        .unwrap();
    assert_eq!(users, 2);
    let statuses: Vec<StatusCode> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                api.post("/auth/refresh", json!({"refresh_token": "forged"}))
                    .await
                    .0,
            );
        }
        v
    };
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    api.stop().await;
}

/// A refusal that comes before the request body is read (here the auth extractor's 401) says
/// `Connection: close`, on every route; a request whose body was read keeps the connection.
#[tokio::test]
async fn a_response_before_the_body_was_read_closes_the_connection() {
    let api = TestApi::start(|_| {}).await;
    let tokens = register_and_login(&api, "unread").await;
    let call = |bearer: Option<&str>| {
        let mut r = Request::post("/chats").header("content-type", "application/json");
        if let Some(b) = bearer {
            r = r.header("authorization", format!("Bearer {b}"));
        }
        r.body(Body::from(json!({"title": "t"}).to_string()))
            .unwrap()
    };
    let app = chorus_api::app::app(api.state.clone());
    let refused = tower::ServiceExt::oneshot(app.clone(), call(None))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap()),
        Some("close")
    );
    let ok = tower::ServiceExt::oneshot(app, call(tokens["access_token"].as_str()))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    assert_eq!(ok.headers().get("connection"), None);
    api.stop().await;
}

/// Send idempotency keys past their TTL and refresh tokens a day past expiry are pruned;
/// younger ones stay.
#[tokio::test]
async fn old_send_keys_and_expired_refresh_tokens_are_pruned() {
    let api = TestApi::start(|c| c.outbox.send_key_ttl_secs = 3600).await;
    register_and_login(&api, "pruned").await;
    let db = &api.state.db;
    sqlx::query(
        "INSERT INTO send_keys (user_id, key, chat_id, message_id, created_at) VALUES
         (1, 'old', 1, 'm1', now() - interval '2 hours'),
         (1, 'young', 1, 'm2', now() - interval '10 minutes')",
    )
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO refresh_tokens (user_id, family, token_hash, expires_at) VALUES
         (1, 'f-old', '\\x01', now() - interval '2 days'),
         (1, 'f-recent', '\\x02', now() - interval '1 hour')",
    )
    .execute(db)
    .await
    .unwrap();
    let (keys, tokens) = chorus_api::housekeeping::prune(&api.state).await.unwrap();
    assert_eq!((keys, tokens), (1, 1));
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM send_keys ORDER BY key")
        .fetch_all(db)
        .await
        .unwrap();
    assert_eq!(left, ["young"]);
    let families: Vec<String> = sqlx::query_scalar(
        "SELECT family FROM refresh_tokens WHERE family LIKE 'f-%' ORDER BY family",
    )
    .fetch_all(db)
    .await
    .unwrap();
    assert_eq!(families, ["f-recent"]);
    // The login's own token (valid for 30 days) is untouched.
    let live: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE family NOT LIKE 'f-%'")
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!(live, 1);
    api.stop().await;
}

#[tokio::test]
async fn a_user_is_found_by_username_by_signed_in_callers_only() {
    let api = TestApi::start(|_| {}).await;
    let (ann, ann_token) = api.user("ann_lookup").await;
    let (bob, _) = api.user("bob_lookup").await;
    let (s, b) = api.get("/users?username=bob_lookup", &ann_token).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"id": bob, "username": "bob_lookup", "display_name": "bob_lookup"})
    );
    let (s, b) = api.get("/users?username=ann_lookup", &ann_token).await;
    assert_eq!((s, b["id"].as_str()), (StatusCode::OK, Some(ann.as_str())));
    // Nobody by that name, a name no account can have, no name at all, and no caller.
    let (s, b) = api.get("/users?username=nobody_here", &ann_token).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, b) = api.get("/users?username=Bob!", &ann_token).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = api.get("/users", &ann_token).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = api
        .req("GET", "/users?username=bob_lookup", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    api.stop().await;
}

#[tokio::test]
async fn the_page_learns_the_hubs_websocket_url_from_the_api() {
    let api = TestApi::start(|c| c.hub.api_url = "https://hub.test:8443/api".into()).await;
    let (s, b) = api.req("GET", "/config", None, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"hub_url": "wss://hub.test:8443/connection/websocket"})
    );
    api.stop().await;
    let api =
        TestApi::start(|c| c.hub.public_url = "wss://chat.test/connection/websocket".into()).await;
    let (_, b) = api.req("GET", "/config", None, None).await;
    assert_eq!(b["hub_url"], "wss://chat.test/connection/websocket");
    api.stop().await;
}
