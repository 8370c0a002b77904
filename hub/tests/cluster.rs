//! Several `chorus-hub` processes on loopback acting as one through a real Redis (the Redis
//! engine): fan-out, presence, join/leave, recovery on another node, server-API actions on
//! users of another node, a Redis restart mid-stream, and a node killed with SIGKILL.
//! Each test starts its own `redis-server` on a free port, so it can kill and restart it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chorus_protocol::codes::DISCONNECT_FORCE_NO_RECONNECT;
use chorus_testkit::hub::HubProcess;
use common::nodes::*;
use common::redis::RedisServer;
use common::tansu::unique;
use common::{config_json, Client, Closed};
use serde_json::{json, Value};

/// `n` nodes sharing `redis`, returned once every node lists all of them.
async fn cluster(redis: &RedisServer, n: usize) -> Vec<HubProcess> {
    start_nodes(&write_config(json!({"address": redis.url()})), n).await
}

#[tokio::test]
async fn publications_presence_and_join_leave_span_the_nodes() {
    let redis = RedisServer::start().await;
    let nodes = cluster(&redis, 3).await;
    let mut clients = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let (mut c, _) = Client::connect(&node.url(), &format!("u{i}")).await;
        let r = subscribe(&mut c, 2, "chat:room").await;
        assert!(r.get("error").is_none(), "{r}");
        clients.push(c);
    }
    // Published on the first node's API, delivered on every node, with one offset.
    let pos = publish(&nodes[0], "chat:room", 1).await;
    assert_eq!(pos["result"]["offset"], 1, "{pos}");
    for c in &mut clients {
        assert_eq!(next_n(c).await, (1, 1));
    }
    // Presence read on the last node lists the clients of all three.
    let presence = api(&nodes[2], "presence", json!({"channel": "chat:room"})).await;
    let users: BTreeSet<&str> = presence["result"]["presence"]
        .as_object()
        .unwrap()
        .values()
        .map(|i| i["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, BTreeSet::from(["u0", "u1", "u2"]));
    let stats = api(&nodes[1], "presence_stats", json!({"channel": "chat:room"})).await;
    assert_eq!(stats["result"], json!({"num_clients": 3, "num_users": 3}));
    // A newcomer on the second node: its join and leave reach the first node's client.
    let (mut late, _) = Client::connect(&nodes[1].url(), "late").await;
    subscribe(&mut late, 2, "chat:room").await;
    let join = clients[0].next().await.unwrap();
    assert_eq!(join["push"]["join"]["info"]["user"], "late", "{join}");
    late.send(json!({"id": 3, "unsubscribe": {"channel": "chat:room"}}))
        .await;
    late.reply(3).await;
    let leave = clients[0].next().await.unwrap();
    assert_eq!(leave["push"]["leave"]["info"]["user"], "late", "{leave}");
    // `channels` on any node counts every node's subscribers.
    let channels = api(&nodes[1], "channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(
        channels["result"]["channels"]["chat:room"]["num_clients"], 3,
        "{channels}"
    );
}

#[tokio::test]
async fn a_client_recovers_missed_publications_on_another_node() {
    let redis = RedisServer::start().await;
    let nodes = cluster(&redis, 3).await;
    let (mut c, _) = Client::connect(&nodes[0].url(), "ann").await;
    let sub = subscribe(&mut c, 2, "chat:r").await;
    let epoch = sub["subscribe"]["epoch"].as_str().unwrap().to_owned();
    for n in 1..=3 {
        publish(&nodes[1], "chat:r", n).await;
        assert_eq!(next_n(&mut c).await, (n, n));
    }
    drop(c);
    for n in 4..=8 {
        publish(&nodes[1], "chat:r", n).await;
    }
    let (mut back, _) = Client::connect(&nodes[2].url(), "ann").await;
    back.send(
        json!({"id": 2, "subscribe": {"channel": "chat:r", "recover": true,
        "offset": 3, "epoch": epoch}}),
    )
    .await;
    let r = back.reply(2).await;
    assert_eq!(r["subscribe"]["recovered"], true, "{r}");
    let offsets: Vec<u64> = r["subscribe"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![4, 5, 6, 7, 8]);
    // And it is live again on its new node.
    publish(&nodes[0], "chat:r", 9).await;
    assert_eq!(next_n(&mut back).await, (9, 9));
}

#[tokio::test]
async fn server_api_actions_reach_users_on_other_nodes() {
    let redis = RedisServer::start().await;
    let nodes = cluster(&redis, 3).await;
    let (mut on_b, _) = Client::connect(&nodes[1].url(), "bob").await;
    let (mut on_c, _) = Client::connect(&nodes[2].url(), "bob").await;
    subscribe(&mut on_b, 2, "chat:x").await;
    // Unsubscribe asked of the first node reaches bob's connection on the second.
    let r = api(
        &nodes[0],
        "unsubscribe",
        json!({"user": "bob", "channel": "chat:x"}),
    )
    .await;
    assert_eq!(r, json!({"result": {}}));
    let push = on_b.next_pub().await;
    assert!(push["push"].get("unsubscribe").is_some(), "{push}");
    // Disconnect asked of the first node closes bob everywhere.
    api(&nodes[0], "disconnect", json!({"user": "bob"})).await;
    assert_eq!(
        on_b.next().await,
        Err(Closed::Code(DISCONNECT_FORCE_NO_RECONNECT.code))
    );
    assert_eq!(
        on_c.next().await,
        Err(Closed::Code(DISCONNECT_FORCE_NO_RECONNECT.code))
    );
}

#[tokio::test]
async fn a_redis_restart_mid_stream_loses_nothing_silently() {
    let mut redis = RedisServer::start().await;
    let nodes = cluster(&redis, 2).await;
    const LAST: u64 = 400;
    let followers = [
        tokio::spawn(follow(
            vec![nodes[0].url()],
            "ann".into(),
            "chat:s".into(),
            LAST,
        )),
        tokio::spawn(follow(
            vec![nodes[1].url()],
            "bob".into(),
            "chat:s".into(),
            LAST,
        )),
    ];
    // Let both subscribe before the stream starts.
    eventually_async("both followers subscribed", || async {
        let r = api(&nodes[0], "presence_stats", json!({"channel": "chat:s"})).await;
        r["result"]["num_clients"] == 2
    })
    .await;
    let mut acknowledged = Vec::new();
    let mut n = 1;
    while n <= LAST {
        if n == 150 {
            redis.kill();
            eventually_async("health and metrics to show the outage", || async {
                get(&nodes[0], "/health").await.contains("degraded")
                    && get(&nodes[1], "/metrics")
                        .await
                        .contains("chorus_hub_redis_up 0")
            })
            .await;
            // Publishing fails clearly while Redis is away.
            let failed = publish(&nodes[0], "chat:s", 0).await;
            assert!(failed.get("error").is_some(), "{failed}");
            redis.restart().await;
            eventually_async("both nodes to reconnect", || async {
                get(&nodes[0], "/health").await.contains(r#""status":"ok""#)
                    && get(&nodes[1], "/health").await.contains(r#""status":"ok""#)
            })
            .await;
        }
        let r = publish(&nodes[n as usize % 2], "chat:s", n).await;
        if r.get("result").is_some() {
            acknowledged.push(n);
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(acknowledged.last(), Some(&LAST));
    for f in followers {
        let seen = tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("a follower stalled")
            .unwrap();
        assert_no_silent_gap(&seen, &acknowledged, "follower");
        assert!(
            !seen.unrecovered_before.is_empty(),
            "Redis came back empty: the client must have been told it could not recover"
        );
    }
}

#[tokio::test]
async fn a_killed_node_leaves_presence_and_its_clients_recover_elsewhere() {
    let redis = RedisServer::start().await;
    let mut nodes = cluster(&redis, 2).await;
    let (mut ann, connected) = Client::connect(&nodes[0].url(), "ann").await;
    let ann_id = connected["connect"]["client"].as_str().unwrap().to_owned();
    let sub = subscribe(&mut ann, 2, "chat:k").await;
    let epoch = sub["subscribe"]["epoch"].as_str().unwrap().to_owned();
    let (mut bob, _) = Client::connect(&nodes[1].url(), "bob").await;
    subscribe(&mut bob, 2, "chat:k").await;
    publish(&nodes[1], "chat:k", 1).await;
    assert_eq!(next_n(&mut ann).await, (1, 1));
    nodes[0].kill();
    assert!(
        ann.next().await.is_err(),
        "the connection went with its node"
    );
    for n in 2..=4 {
        publish(&nodes[1], "chat:k", n).await;
    }
    // Nobody said goodbye for ann's old connection: its entry expires (presence_ttl 3s).
    eventually_async("the dead node's presence to expire", || async {
        let r = api(&nodes[1], "presence", json!({"channel": "chat:k"})).await;
        let present = r["result"]["presence"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        !present.contains_key(&ann_id) && present.len() == 1
    })
    .await;
    let (mut back, _) = Client::connect(&nodes[1].url(), "ann").await;
    back.send(
        json!({"id": 2, "subscribe": {"channel": "chat:k", "recover": true,
        "offset": 1, "epoch": epoch}}),
    )
    .await;
    let r = back.reply(2).await;
    assert_eq!(r["subscribe"]["recovered"], true, "{r}");
    assert_eq!(r["subscribe"]["publications"].as_array().unwrap().len(), 3);
    eventually_async("the dead node to leave `info`", || async {
        api(&nodes[1], "info", json!({})).await["result"]["nodes"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
}

/// The Redis engine's broker on `redis`, under a prefix of its own, as a node builds it.
async fn redis_broker(redis: &RedisServer) -> std::sync::Arc<dyn chorus_hub::broker::Broker> {
    let mut config: Value = serde_json::from_str(&config_json("")).unwrap();
    config["engine"] =
        json!({"type": "redis", "redis": {"address": redis.url(), "prefix": unique("chorus")}});
    let config = chorus_hub::config::load_str(
        &config.to_string(),
        chorus_hub::config::Format::Json,
        "test",
        Vec::new(),
    )
    .unwrap()
    .config;
    chorus_hub::engine::build(&config)
        .await
        .unwrap()
        .broker
        .unwrap()
}

/// The Redis engine drops a chat event produced again at a later offset (a worker's repeat
/// after a crash) by the stream's recent keys, not by a five-minute window: with every
/// time-windowed idempotency key gone (as ten minutes would leave them), the repeat is still
/// neither stored nor published, and the next record is.
#[tokio::test(flavor = "multi_thread")]
async fn a_sourced_repeat_is_dropped_by_the_redis_engine_however_late() {
    use chorus_hub::broker::{HistoryFilter, PublishOptions, SourcePosition};
    let redis = RedisServer::start().await;
    let broker = redis_broker(&redis).await;
    broker.declare_source("chat:", "k0");
    let publish = |offset: u64, key: &'static str| {
        let broker = broker.clone();
        async move {
            let opts = PublishOptions {
                history_size: 10,
                history_ttl: Duration::from_secs(3600),
                history_meta_ttl: Duration::from_secs(3600),
                idempotency_key: Some(key.into()),
                source: Some(SourcePosition {
                    epoch: "k0".into(),
                    lane: 0,
                    offset,
                    complete_after: 0,
                    deliver: true,
                }),
                delta: false,
            };
            let data =
                serde_json::value::RawValue::from_string(format!("{{\"n\":{offset}}}")).unwrap();
            broker
                .publish("chat:r", data, None, None, &opts)
                .await
                .unwrap()
        }
    };
    publish(1, "e1").await;
    publish(2, "e2").await;
    // What a five-minute window would have forgotten by now.
    let keys = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "--scan",
            "--pattern",
            "*idempotency*",
        ])
        .output()
        .unwrap();
    for key in String::from_utf8_lossy(&keys.stdout).lines() {
        std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "DEL", key])
            .status()
            .unwrap();
    }
    let repeat = publish(3, "e1").await;
    assert_eq!(repeat.offset, 1, "the first copy's position");
    publish(4, "e4").await;
    let page = broker
        .history(
            "chat:r",
            &HistoryFilter::default(),
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    let offsets: Vec<u64> = page.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![1, 2, 4], "the repeat was not stored");
    assert_eq!(page.position.offset, 4);
}

/// Where each of `cases` (a position to continue from) leads on `broker`: the missed offsets
/// and the position reported, or `None` when the broker refuses it as unrecoverable. A stream
/// of five publications keeping two (so offsets 1 to 3 are gone), and a sourced stream.
async fn continuations(
    broker: std::sync::Arc<dyn chorus_hub::broker::Broker>,
) -> Vec<Option<(Vec<u64>, u64)>> {
    use chorus_hub::broker::{BrokerError, HistoryFilter, PublishOptions, SourcePosition};
    use chorus_protocol::frame::StreamPosition;
    let ttl = Duration::from_secs(3600);
    let opts = |source: Option<SourcePosition>| PublishOptions {
        history_size: 2,
        history_ttl: ttl,
        history_meta_ttl: ttl,
        idempotency_key: None,
        source,
        delta: false,
    };
    let data = |n: u64| serde_json::value::RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap();
    for n in 1..=5 {
        broker
            .publish("news:g", data(n), None, None, &opts(None))
            .await
            .unwrap();
    }
    broker.declare_source("chat:", "k0");
    for n in 1..=2 {
        let source = SourcePosition {
            epoch: "k0".into(),
            lane: 0,
            offset: n,
            complete_after: 0,
            deliver: true,
        };
        broker
            .publish("chat:s", data(n), None, None, &opts(Some(source)))
            .await
            .unwrap();
    }
    let epoch_of = |channel: &'static str| {
        let broker = broker.clone();
        async move {
            let now = HistoryFilter {
                limit: Some(0),
                ..Default::default()
            };
            broker
                .history(channel, &now, ttl)
                .await
                .unwrap()
                .position
                .epoch
        }
    };
    let (news, chat) = (epoch_of("news:g").await, epoch_of("chat:s").await);
    let cases = [
        ("news:g", 1, news.clone()),   // fallen into the gap
        ("news:g", 3, news.clone()),   // the gap's edge: 4 and 5 are held
        ("news:g", 5, news.clone()),   // up to date
        ("news:g", 6, news.clone()),   // ahead of an unsourced stream
        ("news:g", 3, "other".into()), // another epoch
        ("chat:s", 7, chat.clone()),   // ahead of a sourced stream: it vouches
        ("chat:s", 7, "other".into()),
    ];
    let mut out = Vec::new();
    for (channel, offset, epoch) in cases {
        let filter = HistoryFilter {
            since: Some(StreamPosition { offset, epoch }),
            limit: Some(10),
            reverse: false,
        };
        out.push(match broker.history(channel, &filter, ttl).await {
            Ok(page) => Some((
                page.publications.iter().map(|p| p.offset).collect(),
                page.position.offset,
            )),
            Err(BrokerError::Unrecoverable) => None,
            Err(e) => panic!("{channel} since {offset}: {e}"),
        });
    }
    out
}

/// Both engines continue a client's position by the one rule (`recovery::continue_from`):
/// the same positions continue, with the same missed publications, and the same are refused.
#[tokio::test(flavor = "multi_thread")]
async fn both_engines_continue_the_same_positions_and_refuse_the_same() {
    let want = vec![
        None,
        Some((vec![4, 5], 5)),
        Some((vec![], 5)),
        None,
        None,
        Some((vec![], 7)),
        None,
    ];
    let memory = std::sync::Arc::new(chorus_hub::broker::MemoryBroker::default());
    assert_eq!(continuations(memory).await, want, "memory engine");

    let redis = RedisServer::start().await;
    assert_eq!(
        continuations(redis_broker(&redis).await).await,
        want,
        "redis engine"
    );
}

/// `invalidate_user_tokens` asked of one node holds on every node: a token of the user issued
/// before the line is refused as expired (109, so SDKs fetch a new one) on connect and on a
/// client-side refresh, wherever the client connects; a token issued after it, or another
/// user's, connects. A later call with an earlier line does not move it back.
#[tokio::test]
async fn invalidated_user_tokens_are_refused_on_every_node() {
    let redis = RedisServer::start().await;
    let nodes = cluster(&redis, 2).await;
    let now = common::client::now();
    let connect = |node: usize, claims: Value| {
        let url = nodes[node].url();
        async move {
            let mut c = Client::open(&url).await;
            c.send(json!({"id": 1, "connect": {"token": common::client::token(claims)}}))
                .await;
            let r = c.reply(1).await;
            (c, r)
        }
    };
    let old = json!({"sub": "eve", "iat": now - 10, "exp": now + 3600});
    let (mut held, r) = connect(1, old.clone()).await;
    assert!(r.get("error").is_none(), "before the line: {r}");

    let r = api(
        &nodes[0],
        "invalidate_user_tokens",
        json!({"user": "eve", "issued_before": now, "expire_at": now + 3600}),
    )
    .await;
    assert_eq!(r["result"], json!({}), "{r}");
    let r = api(
        &nodes[1],
        "invalidate_user_tokens",
        json!({"user": "eve", "issued_before": now - 100}),
    )
    .await;
    assert_eq!(
        r["result"],
        json!({}),
        "an earlier line is accepted but moves nothing: {r}"
    );

    for node in 0..2 {
        let (_, r) = connect(node, old.clone()).await;
        assert_eq!(r["error"]["code"], 109, "node {node}, issued before: {r}");
        let (_, r) = connect(node, json!({"sub": "eve", "exp": now + 3600})).await;
        assert_eq!(r["error"]["code"], 109, "node {node}, no iat: {r}");
        let (_, r) = connect(node, json!({"sub": "eve", "iat": now, "exp": now + 3600})).await;
        assert!(
            r.get("error").is_none(),
            "node {node}, issued at the line: {r}"
        );
        let other = json!({"sub": "frank", "iat": now - 10, "exp": now + 3600});
        let (_, r) = connect(node, other).await;
        assert!(r.get("error").is_none(), "node {node}, another user: {r}");
    }
    // The connection opened before the line cannot extend itself with an old token either.
    held.send(json!({"id": 2, "refresh": {"token": common::client::token(old)}}))
        .await;
    assert_eq!(held.reply(2).await["error"]["code"], 109);
    let r = api(&nodes[0], "invalidate_user_tokens", json!({})).await;
    assert_eq!(r["error"]["code"], 107, "user is required: {r}");
}
