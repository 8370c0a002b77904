//! The outbox relay against real PostgreSQL and tansu: a relay that dies between commit and
//! publish, or between publish and delete, loses nothing and keeps the order; two relays at
//! once never publish a row twice.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use chorus_api::outbox;
use chorus_protocol::state::StateEvent;
use common::tansu::{unique, Tansu};
use common::TestApi;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::json;

/// A broker, a state topic on it, and a test API (no relay of its own) using both.
async fn setup(send_timeout_ms: u64) -> (Tansu, String, TestApi) {
    let t = Tansu::start().await;
    let state_topic = unique("chat-state");
    t.create_topic(&state_topic, 1).await;
    let api = api_with(&t, &state_topic, send_timeout_ms).await;
    (t, state_topic, api)
}

async fn api_with(t: &Tansu, state_topic: &str, send_timeout_ms: u64) -> TestApi {
    let (brokers, topic, messages) = (t.brokers(), state_topic.to_owned(), unique("chat-events"));
    t.create_topic(&messages, 1).await;
    TestApi::start_with_hub(move |c| {
        c.kafka.brokers = brokers;
        c.kafka.state_topic = topic;
        c.kafka.messages_topic = messages;
        c.kafka.send_timeout_ms = send_timeout_ms;
        c.outbox.batch = 7;
    })
    .await
}

/// Membership changes that commit outbox rows; returns how many state events they wrote.
async fn changes(api: &TestApi, rounds: usize) -> usize {
    let (_, ann) = api.user(&unique("ann").replace('-', "_")[..20]).await;
    let (bob_id, _) = api.user(&unique("bob").replace('-', "_")[..20]).await;
    let (s, b) = api
        .req("POST", "/chats", Some(&ann), Some(json!({"title": "t"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    for _ in 0..rounds {
        let (s, _) = api
            .req(
                "POST",
                &format!("/chats/{id}/members"),
                Some(&ann),
                Some(json!({"user_id": bob_id})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, _) = api
            .req(
                "DELETE",
                &format!("/chats/{id}/members/{bob_id}"),
                Some(&ann),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    1 + 2 * rounds
}

/// Runs relay rounds until the outbox is empty (at most 30 s); returns the rows it published.
async fn drain(s: &chorus_api::state::AppState) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut published = 0;
    loop {
        published += outbox::relay_once(s).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&s.db)
            .await
            .unwrap();
        if left == 0 {
            return published;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} rows left in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn state_rows(api: &TestApi, topic: &str) -> Vec<StateEvent> {
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE topic = $1 ORDER BY id")
            .bind(topic)
            .fetch_all(&api.state.db)
            .await
            .unwrap();
    rows.iter()
        .map(|p| StateEvent::decode(p).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_killed_between_commit_and_publish_or_publish_and_delete_loses_nothing() {
    let (t, topic, api) = setup(5_000).await;
    // No relay runs while the changes commit: as if it died right after each commit.
    let n = changes(&api, 6).await;
    let committed = state_rows(&api, &topic).await;
    assert_eq!(committed.len(), n);
    let first_batch: Vec<String> =
        sqlx::query_scalar("SELECT topic FROM outbox ORDER BY id LIMIT 7")
            .fetch_all(&api.state.db)
            .await
            .unwrap();
    let republished = first_batch.iter().filter(|t| **t == topic).count();
    assert!(republished >= 3, "{first_batch:?}");

    // A relay publishes the first batch, then dies before deleting it (its transaction never
    // commits; PostgreSQL rolls back a dead connection's transaction the same way).
    {
        let mut tx = api.state.db.begin().await.unwrap();
        let published = outbox::publish_head(&api.state, &mut tx).await.unwrap();
        assert_eq!(published.len(), 7);
        drop(tx);
    }
    // The next relay (a restarted process) publishes everything left. (The dropped
    // transaction's rollback, and with it the relay lock, is released in the background.)
    drain(&api.state).await;

    // On the topic: the first batch twice (at least once), then everything in commit order.
    // Read to the end of the topic, so a copy too many would show as well as one too few.
    let events: Vec<StateEvent> = t
        .read_all(&topic)
        .await
        .iter()
        .map(|p| StateEvent::decode(p).unwrap())
        .collect();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let want: Vec<&str> = committed.iter().map(|e| e.event_id.as_str()).collect();
    let mut deduped: Vec<&str> = Vec::new();
    for id in &ids {
        if !deduped.contains(id) {
            deduped.push(id);
        }
    }
    assert_eq!(
        deduped, want,
        "every event, first occurrences in commit order"
    );
    assert_eq!(ids.len(), n + republished);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_relays_at_once_publish_each_row_once_in_order() {
    let (t, topic, api) = setup(5_000).await;
    let n = changes(&api, 15).await;
    let committed = state_rows(&api, &topic).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&api.state.db)
        .await
        .unwrap();
    // A second API process's state: its own pool, producer and relay.
    let other = chorus_api::state::AppState::connect((*api.state.config).clone())
        .await
        .unwrap();
    let (a, b) = tokio::join!(drain(&api.state), drain(&other));
    assert_eq!(
        a + b,
        rows as usize,
        "every row published by exactly one relay ({a} + {b})"
    );
    let events: Vec<StateEvent> = t
        .read_all(&topic)
        .await
        .iter()
        .map(|p| StateEvent::decode(p).unwrap())
        .collect();
    assert_eq!(events.len(), n, "each row published once");
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let want: Vec<&str> = committed.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, want);
    api.stop().await;
}

/// The real `chorus-api` binary on the test's database, Redis prefix and Kafka, optionally
/// aborting at a crash point (as `kill -9` there would), with more `CHORUS_API__*` settings
/// (keys without the prefix).
fn api_process(
    api: &TestApi,
    t: &Tansu,
    messages: &str,
    port: u16,
    crash_at: &str,
    extra: &[(&str, String)],
) -> std::process::Child {
    let c = &api.state.config;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chorus-api"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CHORUS_API__DATABASE_URL", &c.database_url)
        .env("CHORUS_API__ADDRESS", format!("127.0.0.1:{port}"))
        .env("CHORUS_API__JWT_SECRET", &c.jwt_secret)
        .env("CHORUS_API__REDIS__PREFIX", &c.redis.prefix)
        .env("CHORUS_API__KAFKA__BROKERS", t.brokers())
        .env("CHORUS_API__KAFKA__MESSAGES_TOPIC", messages)
        .env("CHORUS_API__KAFKA__STATE_TOPIC", &c.kafka.state_topic)
        .env("CHORUS_API__KAFKA__STATE_GROUP", unique("state"))
        .env("CHORUS_API__KAFKA__IMAGE_TOPIC", "")
        .env("CHORUS_API__KAFKA__SEND_TIMEOUT_MS", "1000")
        .env("CHORUS_API__HUB__PROXY_KEY", &c.hub.proxy_key)
        .env("CHORUS_API__MEDIA__PATH", &c.media.path)
        .env("CHORUS_API__OUTBOX__POLL_MS", "100")
        .env("CHORUS_API__DEBUG__CRASH_AT", crash_at)
        .env("CHORUS_API__LOG__LEVEL", "warn");
    for (k, v) in extra {
        cmd.env(format!("CHORUS_API__{k}"), v);
    }
    cmd.spawn().unwrap()
}

async fn send_with_key(
    http: &reqwest::Client,
    port: u16,
    chat: &str,
    token: &str,
    key: &str,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let r = http
        .post(format!("http://127.0.0.1:{port}/chats/{chat}/messages"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(json!({"text": format!("sent with {key}")}).to_string())
        .send()
        .await?;
    let status = r.status().as_u16();
    let body = r.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or_default()))
}

/// An image upload with an idempotency key.
async fn upload_with_key(
    http: &reqwest::Client,
    port: u16,
    chat: &str,
    token: &str,
    key: &str,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let boundary = "crash-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&common::png(64, 48, 512));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = http
        .post(format!("http://127.0.0.1:{port}/chats/{chat}/images"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let body = r.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or_default()))
}

/// The `message.created` events on `topic`: every copy must carry `message_id` and one event
/// id; returns how many copies there are.
async fn copies_of(t: &Tansu, topic: &str, message_id: &str, what: &str) -> usize {
    let events: Vec<chorus_protocol::event::ChatEvent> = t
        .read_all(topic)
        .await
        .iter()
        .map(|r| chorus_protocol::event::ChatEvent::decode(r).unwrap())
        .collect();
    assert!(!events.is_empty(), "{what}: nothing on {topic}");
    for e in &events {
        match &e.body {
            chorus_protocol::event::EventBody::MessageCreated(m) => {
                assert_eq!(
                    m.message_id, message_id,
                    "{what}: another message on {topic}"
                )
            }
            other => panic!("{what}: unexpected {other:?}"),
        }
    }
    let event_ids: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        event_ids.len(),
        1,
        "{what}: a repeat carries the same event id"
    );
    assert!(events.len() <= 2, "{what}: {} copies", events.len());
    events.len()
}

/// A send whose process dies right after its commit, or right after Kafka's ack, is still
/// one message as the sender sees it: the retry with the same key gets the same message id,
/// and the chat topic carries that message (its first copy, perhaps a repeat with the same
/// event id) and no other. An image's thumbnail job survives the same deaths: the image
/// topic gets the job for that message id.
#[tokio::test(flavor = "multi_thread")]
async fn a_send_killed_after_commit_or_after_ack_is_one_message_with_one_id() {
    let (t, _, api) = setup(5_000).await;
    let (_, ann) = api.user(&unique("ann").replace('-', "_")[..20]).await;
    let (s, chat) = api
        .req("POST", "/chats", Some(&ann), Some(json!({"title": "t"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{chat}");
    let chat = chat["id"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();

    for step in ["send.after_commit", "send.after_ack"] {
        for image in [false, true] {
            let what = format!("{step}, {}", if image { "image" } else { "text" });
            // Topics of their own, so what is on them is this round's alone.
            let (topic, images) = (unique("chat-events"), unique("chat-images"));
            t.create_topic(&topic, 1).await;
            t.create_topic(&images, 1).await;
            let extra = [("KAFKA__IMAGE_TOPIC", images.clone())];
            let key = unique("key");
            let send = |port: u16| {
                let (http, chat, ann, key) = (&http, &chat, &ann, &key);
                async move {
                    if image {
                        upload_with_key(http, port, chat, ann, key).await
                    } else {
                        send_with_key(http, port, chat, ann, key).await
                    }
                }
            };
            let port = common::free_port();
            let mut dying = api_process(&api, &t, &topic, port, step, &extra);
            assert!(
                common::listening(port, 300).await,
                "chorus-api did not listen"
            );
            let first = send(port).await;
            assert!(
                first.is_err(),
                "{what}: the process should have died mid-send: {first:?}"
            );
            let status = dying.wait().unwrap();
            assert!(!status.success(), "{what}: {status}");
            let committed: String =
                sqlx::query_scalar("SELECT message_id FROM send_keys WHERE key = $1")
                    .bind(&key)
                    .fetch_one(&api.state.db)
                    .await
                    .expect("the key was committed with the message");

            // Restarted at once; the client retries with its key.
            let port = common::free_port();
            let mut back = api_process(&api, &t, &topic, port, "", &extra);
            assert!(
                common::listening(port, 300).await,
                "chorus-api did not come back"
            );
            let (s, retry) = send(port).await.unwrap();
            assert_eq!(s, 201, "{what}: {retry}");
            assert_eq!(
                retry["message_id"],
                committed.as_str(),
                "{what}: the same message id"
            );
            // The relay publishes what the dead send left, once it is due.
            common::eventually("the outbox to drain", 30, || async {
                let left: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE topic = ANY($1)")
                        .bind(vec![topic.clone(), images.clone()])
                        .fetch_one(&api.state.db)
                        .await
                        .unwrap();
                left == 0
            })
            .await;
            copies_of(&t, &topic, &committed, &what).await;
            if image {
                copies_of(
                    &t,
                    &images,
                    &committed,
                    &format!("{what}: the thumbnail job"),
                )
                .await;
            }
            let _ = back.kill();
            let _ = back.wait();
        }
    }
    api.stop().await;
}

/// With Kafka frozen, sends wait for their acknowledgement; they must not hold the pool's
/// connections meanwhile, or login (and the subscribe proxy) would stall behind them.
#[tokio::test(flavor = "multi_thread")]
async fn sends_waiting_on_a_frozen_kafka_leave_the_pool_to_login_and_the_proxy() {
    // Sends wait up to a minute for the frozen broker: longer than this test takes to log in.
    let (t, _, api) = setup(60_000).await;
    let name = unique("ann").replace('-', "_")[..20].to_owned();
    let (ann_id, ann) = api.user(&name).await;
    let (s, chat) = api
        .req("POST", "/chats", Some(&ann), Some(json!({"title": "t"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{chat}");
    let chat = chat["id"].as_str().unwrap().to_owned();
    // Warm the producer's connection and metadata, then freeze the broker.
    let (s, b) = api
        .req(
            "POST",
            &format!("/chats/{chat}/messages"),
            Some(&ann),
            Some(json!({"text": "warm"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    t.pause();
    // More sends than the pool has connections (16), all waiting on Kafka at once (and
    // within the send burst of 20, the warm-up included).
    let sends: Vec<_> = (0..18)
        .map(|n| {
            let (state, ann, chat) = (api.state.clone(), ann.clone(), chat.clone());
            tokio::spawn(async move {
                let req = axum::http::Request::post(format!("/chats/{chat}/messages"))
                    .header("authorization", format!("Bearer {ann}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(
                        json!({"text": format!("m{n}")}).to_string(),
                    ))
                    .unwrap();
                let resp = tower::ServiceExt::oneshot(chorus_api::app::app(state), req)
                    .await
                    .unwrap();
                resp.status().as_u16()
            })
        })
        .collect();
    common::pause(500).await;
    // Login and the proxy answer while every send still waits.
    let (s, b, _) = api
        .post(
            "/auth/login",
            json!({"username": name, "password": "password-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "login while sends wait on Kafka: {b}");
    let (s, b, _) = api
        .call(
            axum::http::Request::post("/hub/subscribe")
                .header("content-type", "application/json")
                .header("x-chorus-proxy-key", common::PROXY_KEY)
                .body(axum::body::Body::from(
                    json!({"client": "c", "user": ann_id, "channel": format!("chat:{chat}")})
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.get("result").is_some(), "the proxy allows a member: {b}");
    let waiting = sends.iter().filter(|h| !h.is_finished()).count();
    assert_eq!(
        waiting, 18,
        "the sends were still waiting on Kafka throughout"
    );
    t.resume();
    // Each send ends as acknowledged (201) or committed and left to the relay (202).
    for h in sends {
        let status = h.await.unwrap();
        assert!(status == 201 || status == 202, "{status}");
    }
    api.stop().await;
}

/// The committed offset of `group` on partition 0 of `topic`, and the topic's high watermark.
fn committed_and_high(t: &Tansu, group: &str, topic: &str) -> (i64, i64) {
    let consumer: StreamConsumer = t.config().set("group.id", group).create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(5))
        .unwrap()
        .elements()[0]
        .offset()
        .to_raw()
        .unwrap_or(-1);
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(5))
        .unwrap();
    (committed, high)
}

/// The API's state consumer `kill -9`ed while state events flow and restarted at once, with
/// static membership (`kafka.state_instance_id`): the restarted process applies every event,
/// and the group's committed offset reaches the end of the state topic.
#[tokio::test(flavor = "multi_thread")]
async fn the_state_consumer_killed_and_restarted_at_once_applies_every_event() {
    let (t, state_topic, api) = setup(5_000).await;
    let messages = api.state.config.kafka.messages_topic.clone();
    let (group, instance) = (unique("state"), unique("api-1"));
    let extra = [
        ("KAFKA__STATE_GROUP", group.clone()),
        ("KAFKA__STATE_INSTANCE_ID", instance),
    ];
    let port = common::free_port();
    let mut first = api_process(&api, &t, &messages, port, "", &extra);
    assert!(
        common::listening(port, 300).await,
        "chorus-api did not listen"
    );
    // Chats created in the test's own API: their outbox rows are published and applied by
    // the process (no member is removed: that would call a hub).
    let (_, ann) = api.user(&unique("ann").replace('-', "_")[..20]).await;
    for n in 0..10 {
        let (s, b) = api
            .req(
                "POST",
                "/chats",
                Some(&ann),
                Some(json!({"title": format!("c{n}")})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    common::eventually("the first events to be applied", 60, || async {
        committed_and_high(&t, &group, &state_topic).0 > 0
    })
    .await;
    let _ = first.kill(); // SIGKILL
    let _ = first.wait();
    for n in 10..20 {
        let (s, b) = api
            .req(
                "POST",
                "/chats",
                Some(&ann),
                Some(json!({"title": format!("c{n}")})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let port = common::free_port();
    let mut second = api_process(&api, &t, &messages, port, "", &extra);
    assert!(
        common::listening(port, 300).await,
        "chorus-api did not come back"
    );
    common::eventually("every state event applied and committed", 90, || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&api.state.db)
            .await
            .unwrap();
        let (committed, high) = committed_and_high(&t, &group, &state_topic);
        left == 0 && committed == high
    })
    .await;
    let (committed, high) = committed_and_high(&t, &group, &state_topic);
    assert_eq!(
        (committed, high),
        (20, 20),
        "20 chats, one state event each"
    );
    let _ = second.kill();
    let _ = second.wait();
    api.stop().await;
}
