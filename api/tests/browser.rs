//! The web client in a real Chromium against the whole stack (`web/e2e/chat.mjs`, driven by
//! playwright-core): two users register, chat live, reload into history, and one removes the
//! other, whose chat closes at once. `scripts/test` installs Debian's chromium and builds the
//! client first.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::stack::{web_dist, Stack};

#[tokio::test(flavor = "multi_thread")]
async fn two_users_chat_in_chromium() {
    assert!(
        web_dist().join("index.html").is_file(),
        "the web client is not built (scripts/test builds it; or npm ci && npm run build in web/)"
    );
    let stack = Stack::start().await;
    let shots = std::env::var_os("CHORUS_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(chorus_testkit::unique("chorus-shots")));
    std::fs::create_dir_all(&shots).unwrap();
    let url = format!("{}/", stack.api_url);
    let web = web_dist().join("..");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("e2e/chat.mjs")
            .arg(&url)
            .arg(&shots)
            .current_dir(web)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{said}");
    assert!(out.status.success(), "the browser test failed:\n{said}");
    assert!(said.contains("browser: every step passed"), "{said}");
    stack.stop().await;
}
