//! Component tests: the hub on port 0, driven over a real WebSocket.
#![allow(clippy::unwrap_used)]

mod common;

use common::{api, now, token, Client, Closed};
use serde_json::json;

#[tokio::test]
async fn connect_subscribe_and_receive_a_server_publication() {
    let hub = common::start("", usize::MAX).await;
    let (mut c, reply) = Client::connect(&hub.url, "42").await;
    let result = &reply["connect"];
    assert!(result["client"].as_str().unwrap().len() > 10);
    assert_eq!(result["pong"], json!(true));
    assert_eq!(result["ping"], json!(2));

    c.send(json!({"id": 2, "subscribe": {"channel": "news"}}))
        .await;
    assert!(c.reply(2).await.get("subscribe").is_some());
    let (status, body) = api(
        &hub,
        "publish",
        json!({"channel": "news", "data": {"text": "hi"}}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"result": {}})));
    let push = c.next().await.unwrap();
    assert_eq!(push["push"]["channel"], "news");
    assert_eq!(push["push"]["pub"]["data"], json!({"text": "hi"}));
}

#[tokio::test]
async fn forged_and_expired_tokens() {
    let hub = common::start("", usize::MAX).await;
    let mut c = Client::open(&hub.url).await;
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "1"}),
        &jsonwebtoken::EncodingKey::from_secret(b"wrong"),
    )
    .unwrap();
    c.send(json!({"id": 1, "connect": {"token": forged}})).await;
    assert_eq!(c.next().await, Err(Closed::Code(3500)));

    let mut c = Client::open(&hub.url).await;
    // Past the 5 s leeway for clock skew.
    c.send(json!({"id": 1, "connect": {"token": token(json!({"sub": "1", "exp": now() - 30}))}}))
        .await;
    assert_eq!(c.reply(1).await["error"]["code"], 109);

    let mut c = Client::open(&hub.url).await;
    c.send(json!({"id": 1, "connect": {}})).await;
    assert_eq!(c.next().await, Err(Closed::Code(3501)), "no credentials");
}

#[tokio::test]
async fn refresh_extends_an_expiring_connection() {
    let hub = common::start("", usize::MAX).await;
    let mut c = Client::open(&hub.url).await;
    c.send(json!({"id": 1, "connect": {"token": token(json!({"sub": "7", "exp": now() + 60}))}}))
        .await;
    let r = c.reply(1).await;
    assert_eq!(r["connect"]["expires"], json!(true));
    assert!(r["connect"]["ttl"].as_u64().unwrap() <= 60);
    c.send(json!({"id": 2, "refresh": {"token": token(json!({"sub": "7", "exp": now() + 3600}))}}))
        .await;
    let r = c.reply(2).await;
    assert!(r["refresh"]["ttl"].as_u64().unwrap() > 3000);
    c.send(json!({"id": 3, "refresh": {"token": token(json!({"sub": "someone-else", "exp": now() + 3600}))}})).await;
    assert_eq!(
        c.next().await,
        Err(Closed::Code(3500)),
        "a token for another user is refused"
    );
}

#[tokio::test]
async fn permissions_by_namespace() {
    let hub = common::start("", usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    c.send(json!({"id": 2, "subscribe": {"channel": "locked:x"}}))
        .await;
    assert_eq!(c.reply(2).await["error"]["code"], 103);
    c.send(json!({"id": 3, "subscribe": {"channel": "nope:x"}}))
        .await;
    assert_eq!(c.reply(3).await["error"]["code"], 102);
    c.send(json!({"id": 4, "publish": {"channel": "chat:a", "data": {}}}))
        .await;
    assert_eq!(
        c.reply(4).await["error"]["code"],
        103,
        "publish needs a subscription in chat"
    );
    c.send(json!({"id": 5, "subscribe": {"channel": "chat:a"}}))
        .await;
    c.reply(5).await;
    c.send(json!({"id": 6, "publish": {"channel": "chat:a", "data": {"m": 1}}}))
        .await;
    assert_eq!(c.reply(6).await, json!({"id": 6, "publish": {}}));
    c.send(json!({"id": 7, "subscribe": {"channel": "chat:a"}}))
        .await;
    assert_eq!(c.reply(7).await["error"]["code"], 105);
    c.send(json!({"id": 8, "rpc": {"method": "x", "data": {}}}))
        .await;
    assert_eq!(c.reply(8).await["error"]["code"], 104);
    // A subscription token opens the locked namespace, for its own user only.
    let t = token(json!({"sub": "1", "channel": "locked:x"}));
    c.send(json!({"id": 9, "subscribe": {"channel": "locked:x", "token": t}}))
        .await;
    assert!(c.reply(9).await.get("subscribe").is_some());
    let t = token(json!({"sub": "2", "channel": "locked:y"}));
    c.send(json!({"id": 10, "subscribe": {"channel": "locked:y", "token": t}}))
        .await;
    assert_eq!(c.reply(10).await["error"]["code"], 103);
    // User-limited channels: allowed for listed users only when the namespace allows them.
    c.send(json!({"id": 11, "subscribe": {"channel": "dm#1,2"}}))
        .await;
    assert!(
        c.reply(11).await.get("subscribe").is_some(),
        "allow_subscribe_for_client covers it here"
    );
}

#[tokio::test]
async fn recovery_returns_missed_publications_exactly() {
    let hub = common::start("", usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    c.send(json!({"id": 2, "subscribe": {"channel": "chat:r"}}))
        .await;
    let sub = c.reply(2).await["subscribe"].clone();
    assert_eq!(sub["recoverable"], json!(true));
    let epoch = sub["epoch"].as_str().unwrap().to_owned();
    api(
        &hub,
        "publish",
        json!({"channel": "chat:r", "data": {"n": 1}}),
    )
    .await;
    let first = c.next_pub().await;
    assert_eq!(first["push"]["pub"]["offset"], 1);
    drop(c);
    for n in 2..=4 {
        api(
            &hub,
            "publish",
            json!({"channel": "chat:r", "data": {"n": n}}),
        )
        .await;
    }
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    c.send(json!({"id": 2, "subscribe": {"channel": "chat:r", "recover": true, "offset": 1, "epoch": epoch}})).await;
    let sub = c.reply(2).await["subscribe"].clone();
    assert_eq!(sub["recovered"], json!(true));
    let got: Vec<i64> = sub["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![2, 3, 4]);

    let (mut c, _) = Client::connect(&hub.url, "1").await;
    c.send(json!({"id": 2, "subscribe": {"channel": "chat:r", "recover": true, "offset": 1, "epoch": "stale"}})).await;
    let sub = c.reply(2).await["subscribe"].clone();
    assert_eq!(sub["was_recovering"], json!(true));
    assert_eq!(
        sub.get("recovered"),
        None,
        "a changed epoch is reported as not recovered"
    );
}

#[tokio::test]
async fn presence_join_leave_and_history() {
    let hub = common::start("", usize::MAX).await;
    let (mut a, _) = Client::connect(&hub.url, "ann").await;
    a.send(json!({"id": 2, "subscribe": {"channel": "chat:p"}}))
        .await;
    a.reply(2).await;
    let join_self = a.next().await.unwrap();
    assert_eq!(join_self["push"]["join"]["info"]["user"], "ann");
    let (mut b, _) = Client::connect(&hub.url, "bob").await;
    b.send(json!({"id": 2, "subscribe": {"channel": "chat:p"}}))
        .await;
    b.reply(2).await;
    let join = a.next().await.unwrap();
    assert_eq!(join["push"]["join"]["info"]["user"], "bob");
    a.send(json!({"id": 3, "presence_stats": {"channel": "chat:p"}}))
        .await;
    assert_eq!(
        a.reply(3).await["presence_stats"],
        json!({"num_clients": 2, "num_users": 2})
    );
    let (_, p) = api(&hub, "presence", json!({"channel": "chat:p"})).await;
    assert_eq!(p["result"]["presence"].as_object().unwrap().len(), 2);
    drop(b);
    let leave = a.next().await.unwrap();
    assert_eq!(leave["push"]["leave"]["info"]["user"], "bob");
    a.send(json!({"id": 4, "publish": {"channel": "chat:p", "data": {"x": 1}}}))
        .await;
    a.reply(4).await;
    a.send(json!({"id": 5, "history": {"channel": "chat:p", "limit": 10}}))
        .await;
    let h = a.reply(5).await;
    assert_eq!(h["history"]["publications"][0]["data"], json!({"x": 1}));
    assert_eq!(h["history"]["publications"][0]["info"]["user"], "ann");
}

#[tokio::test]
async fn bad_input_is_refused_with_the_right_code() {
    let hub = common::start("", usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    c.send_raw("{not json").await;
    assert_eq!(c.next().await, Err(Closed::Code(3501)));

    let (mut c, _) = Client::connect(&hub.url, "1").await;
    c.send_raw(&format!(
        r#"{{"id":2,"publish":{{"channel":"news","data":"{}"}}}}"#,
        "x".repeat(5000)
    ))
    .await;
    assert_eq!(
        c.next().await,
        Err(Closed::Code(1009)),
        "over websocket.message_size_limit"
    );

    let mut c = Client::open(&hub.url).await;
    c.send(json!({"id": 1, "subscribe": {"channel": "news"}}))
        .await;
    assert_eq!(
        c.next().await,
        Err(Closed::Code(3501)),
        "commands before connect"
    );

    let (mut c, _) = Client::connect(&hub.url, "1").await;
    c.send(json!({"send": {"data": {}}})).await;
    assert_eq!(
        c.next().await,
        Err(Closed::Code(3508)),
        "no async message handler"
    );

    // The hub still serves after all that.
    let (_, r) = Client::connect(&hub.url, "1").await;
    assert!(r.get("connect").is_some());
}

#[tokio::test]
async fn silent_and_stale_clients_are_dropped() {
    let hub = common::start("", usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    // Never answer the ping: the hub closes with "no pong" after ping_interval + pong_timeout.
    let mut saw_ping = false;
    loop {
        match tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures_util::StreamExt::next(&mut c.ws),
        )
        .await
        .unwrap()
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) if t.as_str() == "{}" => {
                saw_ping = true
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 3012);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_ping);
    let mut c = Client::open(&hub.url).await;
    assert_eq!(
        c.next().await,
        Err(Closed::Code(3502)),
        "never sent connect"
    );
}

#[tokio::test]
async fn connection_limit_refuses_cleanly() {
    let hub = common::start("", 2).await;
    let (_a, _) = Client::connect(&hub.url, "1").await;
    let (_b, _) = Client::connect(&hub.url, "2").await;
    let mut c = Client::open(&hub.url).await;
    assert_eq!(c.next().await, Err(Closed::Code(3504)));
    assert_eq!(hub.node.metrics.connections_refused.get(), 1);
}

/// This process's resident set, from `/proc/self/statm` (pages).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_disconnected_and_memory_stays_flat() {
    let hub = common::start(r#", "queue_max_size": 65536"#, usize::MAX).await;
    // The slow client stops reading; 64 MiB of publications cannot fit its 64 KiB queue.
    // All of them are published, whatever happens to the client, and this process's resident
    // memory is measured around it: were the queue unbounded it would hold the 64 MiB.
    let data = json!({"blob": "y".repeat(2000)});
    let slow_count = || {
        hub.node
            .metrics
            .disconnects
            .with_label_values(&["3008"])
            .get()
    };
    // The same publications to a channel nobody reads first: what the process grows by
    // anyway (allocator, metrics, other tests of this binary) is the baseline.
    let publish_all = |channel: &'static str| {
        let (hub, data) = (&hub, &data);
        async move {
            let before = resident_bytes();
            for _ in 0..32_000 {
                let (_, r) = api(hub, "publish", json!({"channel": channel, "data": data})).await;
                assert_eq!(r, json!({"result": {}}));
                tokio::task::yield_now().await;
            }
            resident_bytes().saturating_sub(before)
        }
    };
    let published = 32_000 * 2000;
    let baseline = publish_all("nobody").await;
    // Subscribed only now: it does not answer pings, and must be closed as slow, not silent.
    let (mut slow, _) = Client::connect(&hub.url, "slow").await;
    slow.send(json!({"id": 2, "subscribe": {"channel": "firehose"}}))
        .await;
    slow.reply(2).await;
    let grown = publish_all("firehose").await;
    eprintln!("resident growth: {baseline} bytes with no subscriber, {grown} with the slow one");
    assert!(
        grown < baseline + published / 4,
        "resident memory grew {grown} bytes (baseline {baseline}) while {published} bytes were published to a client that does not read"
    );
    // The connection task records the close once it runs; wait for it, bounded.
    for _ in 0..100 {
        if slow_count() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        hub.node.hub.num_subscribers("firehose"),
        0,
        "the slow client was removed"
    );
    assert_eq!(
        hub.node
            .metrics
            .disconnects
            .with_label_values(&["3008"])
            .get(),
        1,
        "disconnected as slow"
    );
    // Its socket buffers may still hold frames, then the close frame comes.
    loop {
        match slow.next().await {
            Ok(_) => continue,
            Err(code) => {
                assert!(
                    matches!(code, Closed::Code(3008) | Closed::NoFrame),
                    "{code:?}"
                );
                break;
            }
        }
    }
}

#[tokio::test]
async fn shutdown_closes_clients_with_reconnect_advice() {
    let hub = common::start("", usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    hub.node.shutdown.cancel();
    assert_eq!(c.next().await, Err(Closed::Code(3001)));
    hub.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn server_side_subscriptions_and_api_actions() {
    let hub = common::start("", usize::MAX).await;
    let mut c = Client::open(&hub.url).await;
    c.send(json!({"id": 1, "connect": {"token": token(json!({"sub": "9", "channels": ["chat:srv"]}))}})).await;
    let r = c.reply(1).await;
    assert!(r["connect"]["subs"]["chat:srv"].is_object());
    api(
        &hub,
        "publish",
        json!({"channel": "chat:srv", "data": {"k": 1}}),
    )
    .await;
    let push = c.next_pub().await;
    assert_eq!(push["push"]["pub"]["data"], json!({"k": 1}));

    let (_, r) = api(&hub, "subscribe", json!({"user": "9", "channel": "news"})).await;
    assert_eq!(r, json!({"result": {}}));
    let push = c.next().await.unwrap();
    assert_eq!(push["push"]["channel"], "news");
    assert!(push["push"]["subscribe"].is_object());
    let (_, ch) = api(&hub, "channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(
        ch["result"]["channels"],
        json!({"chat:srv": {"num_clients": 1}})
    );
    api(&hub, "unsubscribe", json!({"user": "9", "channel": "news"})).await;
    let push = c.next().await.unwrap();
    assert_eq!(push["push"]["unsubscribe"]["code"], 2000);
    api(&hub, "disconnect", json!({"user": "9"})).await;
    assert_eq!(c.next().await, Err(Closed::Code(3503)));
}

/// A subscription token opens only its own channel, for its own user, and only between its
/// `nbf` and `exp`; `sub_refresh` checks the same, and cannot move a subscription to another
/// channel or user.
#[tokio::test]
async fn subscription_tokens_bind_channel_user_and_time_on_subscribe_and_refresh() {
    let hub = common::start("", usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    let other_channel = token(json!({"sub": "1", "channel": "locked:b", "exp": now() + 60}));
    c.send(json!({"id": 2, "subscribe": {"channel": "locked:a", "token": other_channel}}))
        .await;
    assert_eq!(
        c.reply(2).await["error"]["code"],
        103,
        "a token for another channel"
    );
    let early = token(json!({"sub": "1", "channel": "locked:a", "nbf": now() + 120}));
    c.send(json!({"id": 3, "subscribe": {"channel": "locked:a", "token": early}}))
        .await;
    assert_eq!(
        c.reply(3).await["error"]["code"],
        103,
        "a token not valid yet"
    );
    let good = token(json!({"sub": "1", "channel": "locked:a", "exp": now() + 60}));
    c.send(json!({"id": 4, "subscribe": {"channel": "locked:a", "token": good}}))
        .await;
    let r = c.reply(4).await;
    assert_eq!(r["subscribe"]["expires"], json!(true), "{r}");

    // sub_refresh with a token for another channel, another user, or not valid yet: refused,
    // and the subscription keeps the expiry it had.
    for (id, claims) in [
        (
            5,
            json!({"sub": "1", "channel": "locked:b", "exp": now() + 3600}),
        ),
        (
            6,
            json!({"sub": "2", "channel": "locked:a", "exp": now() + 3600}),
        ),
        (
            7,
            json!({"sub": "1", "channel": "locked:a", "nbf": now() + 120, "exp": now() + 3600}),
        ),
    ] {
        c.send(json!({"id": id, "sub_refresh": {"channel": "locked:a", "token": token(claims.clone())}}))
            .await;
        assert_eq!(c.reply(id).await["error"]["code"], 103, "{claims}");
    }
    // A good token for a channel this client is not subscribed to: refused too.
    let unsubscribed = token(json!({"sub": "1", "channel": "locked:b", "exp": now() + 3600}));
    c.send(json!({"id": 8, "sub_refresh": {"channel": "locked:b", "token": unsubscribed}}))
        .await;
    assert_eq!(c.reply(8).await["error"]["code"], 103);
    let renewed = token(json!({"sub": "1", "channel": "locked:a", "exp": now() + 3600}));
    c.send(json!({"id": 9, "sub_refresh": {"channel": "locked:a", "token": renewed}}))
        .await;
    let r = c.reply(9).await;
    assert!(r["sub_refresh"]["ttl"].as_u64().unwrap() > 3000, "{r}");
    // An expired one is told apart (109), so the SDK fetches a fresh token.
    let expired = token(json!({"sub": "1", "channel": "locked:a", "exp": now() - 60}));
    c.send(json!({"id": 10, "sub_refresh": {"channel": "locked:a", "token": expired}}))
        .await;
    assert_eq!(c.reply(10).await["error"]["code"], 109);
}

/// The operator's metrics count what happened, exactly: publications by source, what the
/// engine handed over, one delivery-latency sample per socket write carrying publications,
/// and the build and process metrics.
#[tokio::test]
async fn publications_are_counted_by_source_and_their_delivery_is_timed() {
    let hub = common::start("", usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "7").await;
    c.send(json!({"id": 2, "subscribe": {"channel": "chat:m"}}))
        .await;
    c.reply(2).await;
    for i in 0..3 {
        let (status, _) = api(
            &hub,
            "publish",
            json!({"channel": "chat:m", "data": {"api": i}}),
        )
        .await;
        assert_eq!(status, 200);
        // Each publication is read before the next, so each leaves in a socket write of its own.
        assert_eq!(c.next_pub().await["push"]["pub"]["data"]["api"], i);
    }
    c.send(json!({"id": 3, "publish": {"channel": "chat:m", "data": {"client": 1}}}))
        .await;
    let mut got_reply = false;
    let mut got_pub = false;
    while !(got_reply && got_pub) {
        let v = c.next().await.unwrap();
        got_reply |= v["id"] == 3;
        got_pub |= v["push"]["pub"]["data"]["client"] == 1;
    }
    // A channel nobody here reads counts as published, not as delivered to a socket.
    let (status, _) = api(&hub, "publish", json!({"channel": "nobody", "data": {}})).await;
    assert_eq!(status, 200);

    let m = &hub.node.metrics;
    let text = m.render();
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("{line_start} missing from:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(value(r#"chorus_hub_publications_total{source="api"}"#), 4.0);
    assert_eq!(
        value(r#"chorus_hub_publications_total{source="client"}"#),
        1.0
    );
    assert_eq!(
        value(r#"chorus_hub_publications_total{source="kafka"}"#),
        0.0
    );
    assert_eq!(value("chorus_hub_publications_delivered_total"), 5.0);
    assert_eq!(
        value(r#"chorus_hub_broker_publish_seconds_count{result="ok"}"#),
        5.0
    );
    // Three API publications in three writes; the client's own may share its write with the
    // publish reply, which is one write either way.
    assert_eq!(value("chorus_hub_delivery_seconds_count"), 4.0);
    assert!(value("chorus_hub_delivery_seconds_sum") > 0.0);
    assert!(
        text.contains(r#"chorus_hub_build_info{engine="memory",version=""#),
        "{text}"
    );
    for name in [
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

#[tokio::test]
async fn channel_regex_refuses_other_names_to_clients_only() {
    let config = common::config_json("").replace(
        r#"{"name": "locked"}"#,
        r#"{"name": "locked"}, {"name": "room", "allow_subscribe_for_client": true, "channel_regex": "^[a-z0-9]{1,8}$"}"#,
    );
    let hub = common::start_with(&config, usize::MAX).await;
    let (mut c, _) = Client::connect(&hub.url, "1").await;
    c.send(json!({"id": 2, "subscribe": {"channel": "room:abc123"}}))
        .await;
    assert!(c.reply(2).await.get("subscribe").is_some());
    for (id, channel) in [(3, "room:Not-OK"), (4, "room:toolongname"), (5, "room:")] {
        c.send(json!({"id": id, "subscribe": {"channel": channel}}))
            .await;
        assert_eq!(c.reply(id).await["error"]["code"], 107, "{channel}");
    }
    // The server API is not held to it, as in Centrifugo.
    let (status, body) = api(
        &hub,
        "publish",
        json!({"channel": "room:Not-OK", "data": {}}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"result": {}})));
}
