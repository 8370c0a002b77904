//! The web client's files served by the API at `/` (`web.dir`): files of the build, its
//! `index.html` for the pages it routes itself, and the API's JSON 404 for everything else.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::TestApi;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(api: &TestApi, path: &str, accept: &str) -> (StatusCode, String, String) {
    let response = chorus_api::app::app(api.state.clone())
        .oneshot(
            Request::get(path)
                .header("accept", accept)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, kind, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_client_is_served_at_the_root_and_the_api_keeps_its_404s() {
    let root = std::env::temp_dir().join(chorus_testkit::unique("chorus-web"));
    let dir = root.join("dist");
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    // Beside the build, not in it: never served.
    std::fs::write(root.join("secret.txt"), "secret").unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>Chorus</title>",
    )
    .unwrap();
    std::fs::write(dir.join("assets/app.js"), "console.log(1)").unwrap();
    let web = dir.display().to_string();
    let api = TestApi::start(move |c| c.web.dir = web).await;
    let html = "text/html,application/xhtml+xml";

    let (s, kind, body) = get(&api, "/", html).await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::OK, "<!doctype html><title>Chorus</title>")
    );
    assert!(kind.starts_with("text/html"), "{kind}");
    let (s, kind, body) = get(&api, "/assets/app.js", "*/*").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "console.log(1)"));
    assert!(kind.contains("javascript"), "{kind}");
    // A page the client routes itself (under paths the API does not route): its index.html.
    let (s, _, body) = get(&api, "/c/12", html).await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::OK, "<!doctype html><title>Chorus</title>")
    );
    // The API's own routes and errors are untouched.
    let (s, _, body) = get(&api, "/me", "application/json").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    let (s, kind, body) = get(&api, "/no/such/thing", "application/json").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        kind.starts_with("application/json") && body.contains("no such route"),
        "{body}"
    );
    let (s, _, body) = get(&api, "/assets/missing.js", "*/*").await;
    assert_eq!(
        (s, body.contains("no such route")),
        (StatusCode::NOT_FOUND, true)
    );
    // Nothing outside the directory, however the path is spelled.
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
    ] {
        let (s, _, body) = get(&api, path, "*/*").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(!body.contains("secret"), "{path}: {body}");
    }
    api.stop().await;
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn without_a_client_the_root_is_the_apis_404() {
    let api = TestApi::start(|_| {}).await;
    let (s, _, body) = get(&api, "/", "text/html").await;
    assert_eq!(
        (s, body.contains("no such route")),
        (StatusCode::NOT_FOUND, true)
    );
    api.stop().await;
}
