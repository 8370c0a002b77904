//! The full path against real services (PostgreSQL, Redis, tansu, DynamoDB Local): register →
//! login → create chat → add member → send (HTTP → Kafka) → live on the hub's WebSocket →
//! stored by the sink → history pages; then a removed member loses the live subscription at
//! once and is refused by the subscribe proxy.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::client::Client;
use common::eventually;
use common::stack::Stack;
use serde_json::{json, Value};

async fn subscribe(c: &mut Client, id: u64, channel: &str) -> Value {
    c.send(json!({"id": id, "subscribe": {"channel": channel}}))
        .await;
    c.reply(id).await
}

/// The next message event's data, skipping chat.updated events (the member additions'
/// may arrive after the subscription).
async fn next_data(c: &mut Client) -> Value {
    loop {
        let v = c.next_pub().await;
        let data = v["push"]["pub"]["data"].clone();
        if data["type"] != "chat.updated" {
            return data;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_reaches_the_socket_and_history_and_a_removed_member_is_cut_off() {
    let stack = Stack::start().await;
    let (_ann_id, ann) = stack.user("ann").await;
    let (bob_id, bob) = stack.user("bob").await;
    let (_, eve) = stack.user("eve").await;

    let chat_id = stack.chat_with(&ann, "team", &bob_id).await;
    let channel = format!("chat:{chat_id}");

    // Bob subscribes through the proxy; Eve, not a member, is refused by it.
    let mut bob_ws = stack.connect(&bob).await;
    let r = subscribe(&mut bob_ws, 2, &channel).await;
    assert!(r.get("error").is_none(), "{r}");
    let mut eve_ws = stack.connect(&eve).await;
    let r = subscribe(&mut eve_ws, 2, &channel).await;
    assert_eq!(r["error"]["code"], 103, "{r}");

    // Send with an idempotency key, then retry it: one message.
    let path = format!("/chats/{chat_id}/messages");
    let (s, sent, h) = stack
        .http(
            "POST",
            &path,
            Some(&ann),
            Some(json!({"text": "hello bob"})),
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    assert_eq!(s, 201, "{sent}");
    assert!(h.get("idempotent-replayed").is_none());
    let message_id = sent["message_id"].as_str().unwrap().to_owned();
    let (s, again, h) = stack
        .http(
            "POST",
            &path,
            Some(&ann),
            Some(json!({"text": "hello bob"})),
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    assert_eq!(s, 201, "{again}");
    assert_eq!(again["message_id"], message_id.as_str());
    assert_eq!(h.get("idempotent-replayed").unwrap(), "true");

    // Live: the envelope as produced, with the author's name.
    let data = next_data(&mut bob_ws).await;
    assert_eq!(data["type"], "message.created", "{data}");
    assert_eq!(data["data"]["message_id"], message_id.as_str());
    assert_eq!(data["data"]["text"], "hello bob");
    assert_eq!(data["data"]["author"]["name"], "ann");

    // Nine more; all arrive live, in order, and the retried send was not produced twice.
    let mut ids = vec![message_id.clone()];
    for n in 1..10 {
        let (s, b, _) = stack
            .http(
                "POST",
                &path,
                Some(&ann),
                Some(json!({"text": format!("m{n}")})),
                &[],
            )
            .await;
        assert_eq!(s, 201, "{b}");
        ids.push(b["message_id"].as_str().unwrap().to_owned());
    }
    for want in &ids[1..] {
        let data = next_data(&mut bob_ws).await;
        assert_eq!(data["data"]["message_id"], want.as_str(), "{data}");
    }

    // History, once the sink stored them: newest first, pages of 4 with a stable cursor.
    eventually("the sink to store 10 messages", 60, || async {
        let (s, b, _) = stack
            .http("GET", &format!("{path}?limit=100"), Some(&bob), None, &[])
            .await;
        s == 200 && b["messages"].as_array().unwrap().len() == 10
    })
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{path}?limit=4&before={c}"),
            None => format!("{path}?limit=4"),
        };
        let (s, page, _) = stack.http("GET", &q, Some(&bob), None, &[]).await;
        assert_eq!(s, 200, "{page}");
        if cursor.is_none() {
            // A message sent between pages does not shift the next page.
            let (s, _, _) = stack
                .http(
                    "POST",
                    &path,
                    Some(&ann),
                    Some(json!({"text": "late"})),
                    &[],
                )
                .await;
            assert_eq!(s, 201);
        }
        for m in page["messages"].as_array().unwrap() {
            seen.push(m["message_id"].as_str().unwrap().to_owned());
            assert_eq!(m["author"]["name"], "ann", "{m}");
            assert!(m.get("chat_id").is_none());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every message once, newest first");
    let late = next_data(&mut bob_ws).await;
    assert_eq!(late["data"]["text"], "late");

    // Remove Bob: the hub drops his subscription at once (an unsubscribe push)...
    let (s, b, _) = stack
        .http(
            "DELETE",
            &format!("/chats/{chat_id}/members/{bob_id}"),
            Some(&ann),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 204, "{b}");
    let unsub = loop {
        let v = bob_ws.next().await.unwrap();
        if v["push"].get("unsubscribe").is_some() {
            break v;
        }
        // A chat.updated about the removal may come first.
        assert!(v["push"].get("pub").is_some(), "{v}");
    };
    assert_eq!(unsub["push"]["channel"], channel.as_str(), "{unsub}");
    // ...the proxy refuses him again, and the API too.
    let r = subscribe(&mut bob_ws, 3, &channel).await;
    assert_eq!(r["error"]["code"], 103, "{r}");
    let (s, _, _) = stack
        .http(
            "POST",
            &path,
            Some(&bob),
            Some(json!({"text": "still here?"})),
            &[],
        )
        .await;
    assert_eq!(s, 404);
    let (s, _, _) = stack.http("GET", &path, Some(&bob), None, &[]).await;
    assert_eq!(s, 404);

    // The outbox reached Kafka: both the state events and the chat's own chat.updated events.
    let (s, h, _) = stack.http("GET", "/health", None, None, &[]).await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["outbox_pending"], 0, "{h}");
    let ids: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 10);
    stack.stop().await;
}

/// The same path with the official SDK (`centrifuge` on npm) as the subscriber:
/// `scripts/lib/demo.mjs`, which `scripts/up` also runs against the real stack; with a voice
/// message spoken by espeak-ng, which the SDK receives and then its Whisper transcript, and an
/// image, then its thumbnail from the image worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_official_sdk_gets_a_sent_message_live_and_finds_it_in_history() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let modules = root.join("hub/tests/sdk/node_modules");
    assert!(
        modules.join("centrifuge").exists(),
        "the SDK is not installed: run `npm ci` in hub/tests/sdk (scripts/test does)"
    );
    let stack = Stack::start().await;
    stack.start_transcriber().await;
    let voice = std::env::temp_dir().join(common::tansu::unique("demo-voice"));
    std::fs::write(
        &voice,
        common::speech::wav("Please send me the report before the meeting tomorrow morning."),
    )
    .unwrap();
    let port = stack
        .hub_ws
        .trim_start_matches("ws://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let (script, api_url) = (root.join("scripts/lib/demo.mjs"), stack.api_url.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .arg(api_url)
            .arg(port)
            .arg(&voice)
            .env("NODE_PATH", modules)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo.mjs failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("SDK received \"hello from scripts/up\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("SDK received a voice message (audio/wav"),
        "{stdout}"
    );
    let transcript = stdout
        .lines()
        .find_map(|l| l.split_once("SDK received its transcript "))
        .and_then(|(_, rest)| rest.split_once(": "))
        .map(|(_, text)| text.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("no transcript in {stdout}"));
    let wer = chorus_transcriber::wer::word_error_rate(
        "Please send me the report before the meeting tomorrow morning.",
        &transcript,
    );
    assert!(wer <= 0.2, "heard {transcript:?}: WER {wer:.2}");
    assert!(
        stdout.contains("SDK received an image (1200×800 PNG)")
            && stdout.contains("its thumbnail (320×"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the sink stored them") && stdout.contains("an image with its 320×"),
        "history has the thumbnail: {stdout}"
    );
    stack.stop().await;
}
