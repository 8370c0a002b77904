//! The OpenAPI document: every operation it lists exists on the router, and it matches the
//! checked-in `docs/openapi.json` (regenerate with `CHORUS_UPDATE_OPENAPI=1 cargo test -p
//! chorus-api --test openapi`).
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::TestApi;

#[tokio::test]
async fn every_documented_operation_is_routed_and_the_checked_in_copy_is_current() {
    let api = TestApi::start(|_| {}).await;
    let (s, served) = api.req("GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(served, chorus_api::openapi::spec());
    assert_eq!(served["openapi"], "3.1.0");
    let mut operations = 0;
    for (path, item) in served["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "1")
            .replace("{user_id}", "2")
            .replace("{key}", "chats/1/x.png");
        for method in ["get", "post", "patch", "delete", "put"] {
            let Some(op) = item.get(method) else {
                continue;
            };
            operations += 1;
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            let (s, b) = api.req(&method.to_uppercase(), &concrete, None, None).await;
            assert_ne!(
                s,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is not routed"
            );
            assert_ne!(
                b["error"]["message"], "no such route",
                "{method} {path} is not routed"
            );
            assert!(!s.is_server_error(), "{method} {path}: {s} {b}");
        }
    }
    assert!(operations >= 20, "{operations}");
    // And a path that is not documented is not routed.
    let (s, b) = api.req("GET", "/undocumented", None, None).await;
    assert_eq!(
        (s, b["error"]["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("no such route"))
    );

    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
    if std::env::var_os("CHORUS_UPDATE_OPENAPI").is_some() {
        std::fs::write(&file, &pretty).unwrap();
    }
    let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        checked_in == pretty,
        "docs/openapi.json is stale: run CHORUS_UPDATE_OPENAPI=1 cargo test -p chorus-api --test openapi"
    );
    api.stop().await;
}
