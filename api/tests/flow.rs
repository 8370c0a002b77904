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
    let wer = chorus_testkit::wer::word_error_rate(
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

/// A removed member tries every way back in: a subscription token asked for while still a
/// member, a plain subscribe, recovery from the position held before, a reconnect with the
/// connection token issued earlier, `sub_refresh`, and a second hub node. Each is refused,
/// and the next message reaches the remaining member but none of the removed one's sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_member_cannot_get_back_in_by_any_way() {
    let stack = Stack::start().await;
    let (_ann_id, ann) = stack.user("ann").await;
    let (bob_id, bob) = stack.user("bob").await;
    let chat_id = stack.chat_with(&ann, "team", &bob_id).await;
    let channel = format!("chat:{chat_id}");
    let path = format!("/chats/{chat_id}/messages");

    // While a member, Bob asks for everything he could keep: the API issues no subscription
    // token (the hub would honour it without asking anyone), only a connection token.
    let (s, b, _) = stack
        .http(
            "POST",
            &format!("/chats/{chat_id}/subscription-token"),
            Some(&bob),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 403, "no subscription token while the proxy decides: {b}");
    let (s, conn_token, _) = stack
        .http("POST", "/hub/connection-token", Some(&bob), None, &[])
        .await;
    assert_eq!(s, 200);
    let mut ann_ws = stack.connect(&ann).await;
    assert!(subscribe(&mut ann_ws, 2, &channel)
        .await
        .get("error")
        .is_none());
    let mut bob_ws = stack.connect(&bob).await;
    let r = subscribe(&mut bob_ws, 2, &channel).await;
    assert!(r.get("error").is_none(), "{r}");
    let (s, first, _) = stack
        .http(
            "POST",
            &path,
            Some(&ann),
            Some(json!({"text": "before"})),
            &[],
        )
        .await;
    assert_eq!(s, 201, "{first}");
    let pub_before = loop {
        let v = bob_ws.next_pub().await;
        if v["push"]["pub"]["data"]["type"] == "message.created" {
            break v;
        }
    };
    let offset = pub_before["push"]["pub"]["offset"].as_u64().unwrap();
    let epoch = r["subscribe"]["epoch"].as_str().unwrap().to_owned();

    let (s, _, _) = stack
        .http(
            "DELETE",
            &format!("/chats/{chat_id}/members/{bob_id}"),
            Some(&ann),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 204);
    loop {
        let v = bob_ws.next().await.unwrap();
        if v["push"].get("unsubscribe").is_some() {
            break;
        }
    }

    // 1. Plain subscribe, and recovery from where he was.
    let r = subscribe(&mut bob_ws, 3, &channel).await;
    assert_eq!(r["error"]["code"], 103, "{r}");
    bob_ws
        .send(
            json!({"id": 4, "subscribe": {"channel": channel, "recover": true,
                     "offset": offset, "epoch": epoch}}),
        )
        .await;
    let r = bob_ws.reply(4).await;
    assert_eq!(r["error"]["code"], 103, "recovery: {r}");
    assert!(
        r.get("subscribe").is_none(),
        "no publications recovered: {r}"
    );
    // 2. sub_refresh of the subscription he lost.
    bob_ws
        .send(json!({"id": 5, "sub_refresh": {"channel": channel, "token": conn_token["token"]}}))
        .await;
    assert_eq!(bob_ws.reply(5).await["error"]["code"], 103);
    // 3. A reconnect with the connection token issued while he was a member, recovering.
    let mut again = connect_with(&stack.hub_ws, &conn_token).await;
    again
        .send(
            json!({"id": 2, "subscribe": {"channel": channel, "recover": true,
                     "offset": offset, "epoch": epoch}}),
        )
        .await;
    assert_eq!(
        again.reply(2).await["error"]["code"],
        103,
        "reconnect + recovery"
    );
    // 4. Another hub node.
    let other = stack.second_hub().await;
    let mut elsewhere = stack.connect_to(&other, &bob).await;
    assert_eq!(
        subscribe(&mut elsewhere, 2, &channel).await["error"]["code"],
        103
    );
    // 5. A subscription token now: refused as before (and he is no member either).
    let (s, _, _) = stack
        .http(
            "POST",
            &format!("/chats/{chat_id}/subscription-token"),
            Some(&bob),
            None,
            &[],
        )
        .await;
    assert!(s == 403 || s == 404, "{s}");

    // The next message: Ann gets it; none of Bob's three sockets does.
    let (s, after, _) = stack
        .http(
            "POST",
            &path,
            Some(&ann),
            Some(json!({"text": "after"})),
            &[],
        )
        .await;
    assert_eq!(s, 201, "{after}");
    let want = after["message_id"].as_str().unwrap();
    loop {
        let data = next_data(&mut ann_ws).await;
        if data["data"]["message_id"] == want {
            break;
        }
    }
    for (name, ws) in [
        ("first", &mut bob_ws),
        ("reconnected", &mut again),
        ("second node", &mut elsewhere),
    ] {
        let got = ws.quiet_for(std::time::Duration::from_millis(1500)).await;
        assert!(
            got.iter().all(|v| v["push"].get("pub").is_none()),
            "{name} socket got a publication after the removal: {got:?}"
        );
    }
    stack.stop().await;
}

/// The broker frozen (SIGSTOP) around a removal: the removed member is cut off from every
/// channel of the chat before the 204, with no help from the state consumer, which cannot read
/// the removal. Then nothing sent after the 204 reaches them: a typing indicator while the
/// broker is still frozen and a message once it is back, both received by the remaining member.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removal_cuts_the_member_off_before_it_answers_even_with_kafka_frozen() {
    let stack = Stack::start().await;
    let (_, ann) = stack.user("frozen_ann").await;
    let (bob_id, bob) = stack.user("frozen_bob").await;
    let (cat_id, cat) = stack.user("frozen_cat").await;
    let chat_id = stack.chat_with(&ann, "team", &bob_id).await;
    let (s, b, _) = stack
        .http(
            "POST",
            &format!("/chats/{chat_id}/members"),
            Some(&ann),
            Some(json!({"user_id": cat_id})),
            &[],
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let [chat, typing] = chorus_protocol::event::chat_channels(&chat_id);
    let mut bob_ws = stack.connect(&bob).await;
    let mut cat_ws = stack.connect(&cat).await;
    for ws in [&mut bob_ws, &mut cat_ws] {
        for (id, channel) in [(2, &chat), (3, &typing)] {
            let r = subscribe(ws, id, channel).await;
            assert!(r.get("error").is_none(), "{channel}: {r}");
        }
    }
    let mut ann_ws = stack.connect(&ann).await;
    // Live before the removal: the consumer runs and Bob's subscription works.
    let before = send_text(&stack, &chat_id, &ann, "before").await;
    wait_for_message(&mut bob_ws, &before).await;

    stack.tansu.pause();
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
    let mut cut = HashSet::new();
    while cut.len() < 2 {
        let v = bob_ws.next().await.expect("Bob's socket stays open");
        if v["push"].get("unsubscribe").is_some() {
            cut.insert(v["push"]["channel"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(cut, HashSet::from([chat.clone(), typing.clone()]));
    // Back in? The subscribe proxy reads PostgreSQL, where he is gone.
    assert_eq!(subscribe(&mut bob_ws, 4, &chat).await["error"]["code"], 103);
    assert_eq!(
        subscribe(&mut bob_ws, 5, &typing).await["error"]["code"],
        103
    );

    // A typing indicator, with a draft in it, while Kafka is still frozen: Cat only.
    let draft = json!({"typing": true, "draft": "the secret plan"});
    ann_ws
        .send(json!({"id": 2, "publish": {"channel": typing, "data": draft}}))
        .await;
    let r = ann_ws.reply(2).await;
    assert!(r.get("error").is_none(), "{r}");
    loop {
        let v = cat_ws.next_pub().await;
        if v["push"]["channel"] == typing.as_str() && v["push"]["pub"]["data"] == draft {
            break;
        }
    }
    stack.tansu.resume();
    let after = send_text(&stack, &chat_id, &ann, "after").await;
    wait_for_message(&mut cat_ws, &after).await;
    let got = bob_ws
        .quiet_for(std::time::Duration::from_millis(1500))
        .await;
    let leaked: Vec<&Value> = got
        .iter()
        .filter(|v| v["push"].get("pub").is_some())
        .collect();
    assert!(
        leaked.is_empty(),
        "publications after the removal reached Bob: {leaked:?}"
    );
    stack.stop().await;
}

/// Sends `text` to the chat (retried while the broker comes back); returns its message id.
async fn send_text(stack: &Stack, chat_id: &str, access: &str, text: &str) -> String {
    let path = format!("/chats/{chat_id}/messages");
    let key = format!("send-{chat_id}-{}", text.replace(' ', "-"));
    for _ in 0..60 {
        let (s, b, _) = stack
            .http(
                "POST",
                &path,
                Some(access),
                Some(json!({"text": text})),
                &[("Idempotency-Key", key.as_str())],
            )
            .await;
        match s {
            201 | 202 => return b["message_id"].as_str().unwrap().to_owned(),
            503 => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            _ => panic!("send {text}: {s} {b}"),
        }
    }
    panic!("send {text}: the API never took it");
}

/// Reads until the chat message `id` arrives live (the broker may be catching up).
async fn wait_for_message(ws: &mut Client, id: &str) {
    loop {
        let v = ws
            .next_within(std::time::Duration::from_secs(60))
            .await
            .expect("the socket stays open")
            .unwrap_or_else(|| panic!("message {id} never arrived"));
        if v["push"]["pub"]["data"]["data"]["message_id"] == id {
            return;
        }
    }
}

/// A hub connection made with a connection token issued earlier.
async fn connect_with(url: &str, token: &Value) -> Client {
    let mut c = Client::open(url).await;
    c.send(json!({"id": 1, "connect": {"token": token["token"]}}))
        .await;
    let r = c.reply(1).await;
    assert!(r.get("error").is_none(), "{r}");
    c
}

/// schemathesis (not written here) throws inputs built from the OpenAPI document at every
/// operation, with every check on, once as a signed-in member of a real chat and once
/// anonymous: no 5xx, no status or content type the document does not list, no schema-valid
/// request refused as invalid, no invalid one accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_nothing_the_document_does_not_promise() {
    let bin = std::env::var("CHORUS_SCHEMATHESIS_BIN")
        .expect("CHORUS_SCHEMATHESIS_BIN: scripts/test installs schemathesis and sets it");
    let stack = Stack::start().await;
    let (_, ann) = stack.user("ann").await;
    let (bob_id, _) = stack.user("bob").await;
    let chat_id = stack.chat_with(&ann, "fuzzed", &bob_id).await;
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    for (label, bearer) in [("signed in", Some(ann.clone())), ("anonymous", None)] {
        let mut cmd = std::process::Command::new(&bin);
        // It keeps a crash cache in its working directory: not in the checkout.
        cmd.current_dir(std::env::temp_dir())
            .arg("--no-color")
            .arg("--config-file")
            .arg(&config)
            .args(["run", &format!("{}/openapi.json", stack.api_url)])
            .args([
                "--checks",
                "all",
                "--max-examples",
                "15",
                "--request-timeout",
                "20",
            ])
            .arg("--generation-deterministic")
            .env("CHORUS_FUZZ_CHAT_ID", &chat_id)
            .env("CHORUS_FUZZ_MEMBER_ID", &bob_id)
            .env("CHORUS_FUZZ_PROXY_KEY", common::stack::PROXY_KEY);
        if let Some(token) = &bearer {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis ({label}) failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = stdout
            .lines()
            .rev()
            .find(|l| l.contains("passed") || l.contains("cases"))
            .unwrap_or("");
        eprintln!("schemathesis ({label}): {summary}");
    }
    stack.stop().await;
}

/// Opens a hub connection carrying `cookie` and connects with no token (the connect proxy
/// asks the API); the connect reply, or how the hub closed the socket.
async fn connect_by_cookie(url: &str, cookie: &str) -> (Client, Result<Value, String>) {
    let mut c = Client::open_with_headers(url, &[("Cookie", cookie)]).await;
    c.send(json!({"id": 1, "connect": {}})).await;
    let r = match c.next().await {
        Ok(v) => Ok(v),
        Err(closed) => Err(format!("{closed:?}")),
    };
    (c, r)
}

/// A browser connects on its session cookie alone (the hub's connect proxy asks the API), and
/// members, only they, publish and read typing indicators on `typing:<chat>` (the publish
/// proxy). Every other way in is tried: no cookie, a forged one, an access token issued before
/// a logout, a non-member, a member on another chat's typing channel, a client publish on the
/// chat's message channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_cookie_connects_and_only_members_send_typing_indicators() {
    let st = Stack::start().await;
    let (_, alice) = st.user("cookie_alice").await;
    let (_, mallory) = st.user("cookie_mallory").await;
    // Bob registers and logs in once: his cookies, and his one session, which logout revokes.
    let bob = json!({"username": "cookie_bob", "password": "password-1"});
    let (s, b, _) = st
        .http("POST", "/auth/register", None, Some(bob), &[])
        .await;
    assert_eq!(s, 201, "{b}");
    let bob_id = b["id"].as_str().unwrap().to_owned();
    let (s, login, headers) = st
        .http(
            "POST",
            "/auth/login",
            None,
            Some(json!({"username": "cookie_bob", "password": "password-1"})),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{login}");
    let set: Vec<&str> = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let bob_cookie = set
        .iter()
        .find_map(|c| c.strip_prefix("chorus_access="))
        .and_then(|c| c.split(';').next())
        .map(|t| format!("chorus_access={t}"))
        .unwrap_or_else(|| panic!("no access cookie in {set:?}"));
    assert!(
        set.iter().any(|c| c.starts_with("chorus_access=")
            && c.contains("HttpOnly")
            && c.contains("Path=/connection")),
        "{set:?}"
    );
    let chat = st.chat_with(&alice, "typing", &bob_id).await;
    let (_, carol) = st.user("cookie_carol").await;
    let (s, b, _) = st
        .http(
            "POST",
            "/chats",
            Some(&carol),
            Some(json!({"title": "other"})),
            &[],
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let other_chat = b["id"].as_str().unwrap().to_owned();
    let typing = format!("typing:{chat}");

    // Bob, on his cookie alone, reads typing indicators of his chat.
    let (mut bob, r) = connect_by_cookie(&st.hub_ws, &bob_cookie).await;
    let r = r.unwrap();
    assert!(r.get("error").is_none(), "{r}");
    let sub = subscribe(&mut bob, 2, &typing).await;
    assert!(sub.get("error").is_none(), "{sub}");

    // Alice, a member, types: Bob sees it, with her user id.
    let (mut a, r) = connect_by_cookie(&st.hub_ws, &format!("chorus_access={alice}")).await;
    assert!(r.unwrap().get("error").is_none());
    a.send(json!({"id": 2, "publish": {"channel": typing, "data": {"typing": true}}}))
        .await;
    let r = a.reply(2).await;
    assert!(r.get("error").is_none(), "{r}");
    let got = bob.next_pub().await;
    assert_eq!(got["push"]["pub"]["data"], json!({"typing": true}));
    // Not a member of the other chat: its typing channel refuses her.
    let other_typing = format!("typing:{other_chat}");
    a.send(json!({"id": 3, "publish": {"channel": other_typing, "data": {"typing": true}}}))
        .await;
    assert_eq!(a.reply(3).await["error"]["code"], 103);
    // The chat's message channel takes no client publications: messages go through the API.
    a.send(json!({"id": 4, "publish": {"channel": format!("chat:{chat}"), "data": {"text": "x"}}}))
        .await;
    assert_eq!(a.reply(4).await["error"]["code"], 103);

    // Mallory, not a member, can neither read nor type there.
    let (mut m, r) = connect_by_cookie(&st.hub_ws, &format!("chorus_access={mallory}")).await;
    assert!(r.unwrap().get("error").is_none());
    assert_eq!(subscribe(&mut m, 2, &typing).await["error"]["code"], 103);
    m.send(json!({"id": 3, "publish": {"channel": typing, "data": {"typing": true}}}))
        .await;
    assert_eq!(m.reply(3).await["error"]["code"], 103);
    assert!(
        bob.quiet_for(std::time::Duration::from_millis(500))
            .await
            .is_empty(),
        "nothing from a refused publish reaches a member"
    );

    // No cookie, a forged one: refused with 4501, no reconnect.
    let (_, r) = connect_by_cookie(&st.hub_ws, "theme=dark").await;
    assert_eq!(r.unwrap_err(), "Code(4501)");
    let forged = {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let claims = json!({"sub": bob_id, "iat": 0, "exp": 4_000_000_000u64, "typ": "access"});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"not-the-secret"),
        )
        .unwrap()
    };
    let (_, r) = connect_by_cookie(&st.hub_ws, &format!("chorus_access={forged}")).await;
    assert_eq!(r.unwrap_err(), "Code(4501)");

    // The refresh proxy extends a connection whose session (from the cookie it opened with,
    // which the hub passes on) is live...
    let key = [("X-Chorus-Proxy-Key", common::PROXY_KEY)];
    let with_cookie = [
        ("X-Chorus-Proxy-Key", common::PROXY_KEY),
        ("Cookie", bob_cookie.as_str()),
    ];
    let refresh = json!({"client": "c", "user": bob_id});
    let (s, b, _) = st
        .http(
            "POST",
            "/hub/refresh",
            None,
            Some(refresh.clone()),
            &with_cookie,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["result"]["expire_at"].as_i64().unwrap() > common::client::now(),
        "{b}"
    );
    // ...but not without the proxy key, nor without the cookie it opened with.
    let (s, _, _) = st
        .http("POST", "/hub/refresh", None, Some(refresh.clone()), &[])
        .await;
    assert_eq!(s, 401);
    let (s, b, _) = st
        .http("POST", "/hub/refresh", None, Some(refresh.clone()), &key)
        .await;
    assert_eq!((s, &b["result"]["expired"]), (200, &json!(true)), "{b}");

    // Bob logs out: the access cookie he still holds no longer connects, and the refresh
    // proxy ends the connection he has.
    let refresh_token = login["refresh_token"].as_str().unwrap();
    let (s, _, _) = st
        .http(
            "POST",
            "/auth/logout",
            None,
            Some(json!({"refresh_token": refresh_token})),
            &[],
        )
        .await;
    assert_eq!(s, 204);
    let (_, r) = connect_by_cookie(&st.hub_ws, &bob_cookie).await;
    assert_eq!(
        r.unwrap_err(),
        "Code(4501)",
        "an access token issued before the logout"
    );
    let (s, b, _) = st
        .http("POST", "/hub/refresh", None, Some(refresh), &with_cookie)
        .await;
    assert_eq!((s, &b["result"]["expired"]), (200, &json!(true)), "{b}");
    st.stop().await;
}

/// Signs in twice (two sessions, as two devices), connects from both, and signs one out. Then
/// tries every way that session could keep the hub, as a thief holding its tokens would: the
/// hub token issued before the logout, a new hub token for its still-unexpired access token,
/// its access cookie on connect and on refresh. Each is refused. The other session loses
/// nothing but a reconnect: its new hub token connects, and a message reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signing_out_ends_that_sessions_hub_access_and_no_other() {
    let st = Stack::start().await;
    let (dan_id, _) = st.user("signout_dan").await;
    let login = || async {
        let (s, b, _) = st
            .http(
                "POST",
                "/auth/login",
                None,
                Some(json!({"username": "signout_dan", "password": "password-1"})),
                &[],
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b
    };
    let (phone, laptop) = (login().await, login().await);
    let access = |l: &Value| l["access_token"].as_str().unwrap().to_owned();
    let (s, chat, _) = st
        .http(
            "POST",
            "/chats",
            Some(&access(&laptop)),
            Some(json!({"title": "mine"})),
            &[],
        )
        .await;
    assert_eq!(s, 201, "{chat}");
    let channel = format!("chat:{}", chat["id"].as_str().unwrap());
    let stack = &st;
    let hub_token = |a: String| async move {
        stack
            .http("POST", "/hub/connection-token", Some(&a), None, &[])
            .await
    };
    let (s, phone_token, _) = hub_token(access(&phone)).await;
    assert_eq!(s, 200, "{phone_token}");
    let (s, laptop_token, _) = hub_token(access(&laptop)).await;
    assert_eq!(s, 200, "{laptop_token}");
    let phone_cookie = format!("chorus_access={}", access(&phone));
    let mut phone_ws = connect_with(&st.hub_ws, &phone_token).await;
    let (mut phone_cookie_ws, r) = connect_by_cookie(&st.hub_ws, &phone_cookie).await;
    assert!(r.unwrap().get("error").is_none());
    let mut laptop_ws = connect_with(&st.hub_ws, &laptop_token).await;
    for ws in [&mut phone_ws, &mut phone_cookie_ws, &mut laptop_ws] {
        let r = subscribe(ws, 2, &channel).await;
        assert!(r.get("error").is_none(), "{r}");
    }

    let (s, b, _) = st
        .http(
            "POST",
            "/auth/logout",
            None,
            Some(json!({"refresh_token": phone["refresh_token"]})),
            &[],
        )
        .await;
    assert_eq!(s, 204, "{b}");
    // Every connection of the user is closed with "force reconnect", at once.
    for (name, ws) in [
        ("phone", &mut phone_ws),
        ("phone cookie", &mut phone_cookie_ws),
        ("laptop", &mut laptop_ws),
    ] {
        let closed = loop {
            match ws.next().await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(format!("{closed:?}"), "Code(3011)", "{name}");
    }

    // The phone's ways back: all refused.
    let mut again = Client::open(&st.hub_ws).await;
    again
        .send(json!({"id": 1, "connect": {"token": phone_token["token"]}}))
        .await;
    assert_eq!(
        again.reply(1).await["error"]["code"],
        109,
        "the hub token issued before the logout is expired"
    );
    let (s, b, _) = hub_token(access(&phone)).await;
    assert_eq!(s, 401, "no new hub token for a signed-out session: {b}");
    let (_, r) = connect_by_cookie(&st.hub_ws, &phone_cookie).await;
    assert_eq!(r.unwrap_err(), "Code(4501)", "the access cookie");
    let key = [
        ("X-Chorus-Proxy-Key", common::PROXY_KEY),
        ("Cookie", phone_cookie.as_str()),
    ];
    let (s, b, _) = st
        .http(
            "POST",
            "/hub/refresh",
            None,
            Some(json!({"client": "c", "user": dan_id})),
            &key,
        )
        .await;
    assert_eq!((s, &b["result"]["expired"]), (200, &json!(true)), "{b}");

    // The laptop: its old hub token is refused like every token issued before the line (the
    // second after the logout), and the new one it fetches, as its SDK does on 109, connects.
    let mut again = Client::open(&st.hub_ws).await;
    again
        .send(json!({"id": 1, "connect": {"token": laptop_token["token"]}}))
        .await;
    assert_eq!(again.reply(1).await["error"]["code"], 109);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, fresh, _) = hub_token(access(&laptop)).await;
    assert_eq!(s, 200, "{fresh}");
    let mut laptop_ws = connect_with(&st.hub_ws, &fresh).await;
    let r = subscribe(&mut laptop_ws, 2, &channel).await;
    assert!(r.get("error").is_none(), "{r}");
    let sent = send_text(
        &st,
        chat["id"].as_str().unwrap(),
        &access(&laptop),
        "still here",
    )
    .await;
    wait_for_message(&mut laptop_ws, &sent).await;
    st.stop().await;
}
