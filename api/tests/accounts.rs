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
    let api = TestApi::start(|c| c.refresh_grace = Duration::from_secs(1)).await;
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
    let api = TestApi::start(|_| {}).await;
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
