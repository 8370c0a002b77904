//! Kafka read once per cluster: three `chorus-hub` processes on the Redis engine share one
//! consumer group, so each of a topic's six partitions is read by one node and published
//! through Redis to all three. One node is killed with SIGKILL mid-stream: its partitions go
//! to the others once it leaves the cluster's node list, and every subscriber (those of the
//! killed node recovering on another) still gets every record exactly once, in partition
//! order.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::nodes::*;
use common::redis::RedisServer;
use common::tansu::{chat_event, unique, Tansu};
use common::{Client, Closed};
use serde_json::{json, Value};

const N: u64 = 10_000;
const PARTITIONS: u64 = 6;

fn channels() -> Vec<String> {
    (0..PARTITIONS).map(|p| format!("chat:g{p}")).collect()
}

/// What one client received per channel (the records' sequence numbers), and how often a
/// resubscription could not recover.
#[derive(Debug, Default)]
struct Received {
    got: BTreeMap<String, Vec<u64>>,
    unrecovered: usize,
    reconnects: usize,
}

fn seq_of(p: &Value) -> u64 {
    p["data"]["data"]["text"].as_str().unwrap().parse().unwrap()
}

/// Follows every channel from the first of `urls`, moving to the next node when one is gone
/// and recovering from the last position of each channel, until `N` records arrived.
async fn follow_chats(urls: Vec<String>, user: String) -> Received {
    let mut r = Received::default();
    let mut positions: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut attempt = 0usize;
    'connection: loop {
        let total: usize = r.got.values().map(Vec::len).sum();
        if total as u64 >= N {
            return r;
        }
        let url = &urls[attempt % urls.len()];
        let Some((mut c, _)) = Client::try_connect(url, &user).await else {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for (i, ch) in channels().iter().enumerate() {
            let mut req = json!({"channel": ch});
            if let Some((offset, epoch)) = positions.get(ch) {
                req["recover"] = json!(true);
                req["offset"] = json!(offset);
                req["epoch"] = json!(epoch);
            }
            c.send(json!({"id": 10 + i, "subscribe": req})).await;
        }
        for (i, ch) in channels().iter().enumerate() {
            let Ok(reply) = c.try_reply(10 + i as u64).await else {
                attempt += 1;
                r.reconnects += 1;
                continue 'connection;
            };
            let s = &reply["subscribe"];
            assert!(s.is_object(), "{ch}: {reply}");
            if positions.contains_key(ch) && s["recovered"] != true {
                r.unrecovered += 1;
            }
            let got = r.got.entry(ch.clone()).or_default();
            for p in s["publications"].as_array().into_iter().flatten() {
                got.push(seq_of(p));
            }
            let epoch = s["epoch"].as_str().unwrap().to_owned();
            positions.insert(ch.clone(), (s["offset"].as_u64().unwrap_or(0), epoch));
        }
        loop {
            let total: usize = r.got.values().map(Vec::len).sum();
            if total as u64 >= N {
                return r;
            }
            match c.next_within(Duration::from_secs(40)).await {
                Ok(Some(v)) => {
                    let push = &v["push"];
                    let Some(p) = push.get("pub") else { continue };
                    let ch = push["channel"].as_str().unwrap().to_owned();
                    r.got.entry(ch.clone()).or_default().push(seq_of(p));
                    if let Some(pos) = positions.get_mut(&ch) {
                        pos.0 = p["offset"].as_u64().unwrap();
                    }
                }
                Ok(None) => panic!(
                    "{user}: nothing for 40 s after {total} records: {:?}",
                    r.got
                        .iter()
                        .map(|(c, g)| (c, g.len(), g.last()))
                        .collect::<Vec<_>>()
                ),
                Err(Closed::Code(_)) => {
                    r.reconnects += 1;
                    continue 'connection;
                }
                Err(Closed::NoFrame) => {
                    attempt += 1;
                    r.reconnects += 1;
                    continue 'connection;
                }
            }
        }
    }
}

async fn published(node: &chorus_testkit::hub::HubProcess) -> f64 {
    node.metric(
        "chorus_hub_consumer_records_total",
        r#"consumer="chats",outcome="published""#,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_in_one_group_deliver_every_record_once_and_survive_a_kill() {
    let t = Tansu::start().await;
    let redis = RedisServer::start().await;
    let topic = unique("shared");
    t.create_topic(&topic, PARTITIONS as i32).await;
    let (brokers, group) = (t.brokers(), unique("hubs"));
    let config = write_config_with(json!({"address": redis.url()}), |c| {
        c["channel"]["namespaces"][0]["history_size"] = json!(N);
        c["channel"]["namespaces"][0]["allow_publish_for_subscriber"] = json!(false);
        // The whole stream may queue for a client on a busy machine; order is the point here.
        c["client"]["queue_max_size"] = json!(64 * 1024 * 1024);
        c["consumers"] = json!([{"enabled": true, "name": "chats", "type": "kafka", "kafka": {
            "brokers": [brokers], "topics": [topic], "consumer_group": group,
            "chat_event_mode": {"enabled": true}}}]);
    });
    let mut nodes = start_nodes(&config, 3).await;
    eventually_async("the group to share the partitions out", || async {
        let mut counts = Vec::new();
        for node in &nodes {
            counts.push(node.metric("chorus_hub_consumer_partitions", "chats").await);
        }
        counts.iter().sum::<f64>() == PARTITIONS as f64 && counts.iter().all(|c| *c >= 1.0)
    })
    .await;

    // One follower per node; the killed node's follower moves on to the next node.
    let mut follows = Vec::new();
    for i in 0..3 {
        let urls = (0..3).map(|k| nodes[(i + k) % 3].url()).collect();
        follows.push(tokio::spawn(follow_chats(urls, format!("f{i}"))));
    }
    eventually_async("every follower subscribed", || async {
        let r = api(&nodes[0], "presence_stats", json!({"channel": "chat:g5"})).await;
        r["result"]["num_clients"] == 3
    })
    .await;

    // A steady producer: chat g<p> on partition p, record `seq` on partition seq % 6.
    let producer = t.producer();
    let produce_topic = topic.clone();
    let produced = tokio::spawn(async move {
        for chunk in 0..N / 50 {
            let mut pending = Vec::new();
            for seq in chunk * 50..(chunk + 1) * 50 {
                let p = seq % PARTITIONS;
                let chat = format!("g{p}");
                let payload = chat_event(&chat, seq);
                let record = rdkafka::producer::FutureRecord::to(&produce_topic)
                    .key(&chat)
                    .payload(&payload)
                    .partition(p as i32);
                pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
            }
            for f in pending {
                f.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });

    // Mid-stream, the second node dies without a word: its partitions stall until the others
    // stop hearing from it, then they take them over from the committed offsets.
    eventually_async("a fifth of the stream published", || async {
        let mut sum = 0.0;
        for node in &nodes {
            sum += published(node).await;
        }
        sum >= (N / 5) as f64
    })
    .await;
    let before_kill = published(&nodes[1]).await;
    nodes[1].kill();
    assert!(
        before_kill < (N / 3) as f64,
        "the killed node had published {before_kill}: not mid-stream"
    );
    produced.await.unwrap();

    for (i, f) in follows.into_iter().enumerate() {
        let r = tokio::time::timeout(Duration::from_secs(180), f)
            .await
            .expect("a follower stalled")
            .unwrap();
        for (p, ch) in channels().iter().enumerate() {
            let expected: Vec<u64> = (0..N).filter(|s| s % PARTITIONS == p as u64).collect();
            assert_eq!(
                r.got.get(ch),
                Some(&expected),
                "follower {i} on {ch}: every record once, in partition order"
            );
        }
        assert_eq!(r.unrecovered, 0, "follower {i}: recovered without a gap");
        if i == 1 {
            assert!(r.reconnects > 0, "the killed node's follower moved on");
        }
    }
    // Read once: each surviving node published only its share, not every record.
    for i in [0, 2] {
        let own = published(&nodes[i]).await;
        assert!(
            own > 0.0 && own < N as f64,
            "node {i} published {own} of {N} records: it should read only some partitions"
        );
    }
}

/// Records in publication-data mode bring no idempotency key and no stream position of their
/// own. While their partitions change hands (a node killed mid-stream, then a node added), the
/// next holder reads again what the last one published but had not committed; each record must
/// still be published once. Counted exactly, per record, in the channels' histories (with
/// history) and by a subscriber of a history-less channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_published_once_while_partitions_change_hands() {
    const RECORDS: u64 = 3_000;
    let t = Tansu::start().await;
    let redis = RedisServer::start().await;
    let topic = unique("plain");
    t.create_topic(&topic, PARTITIONS as i32).await;
    let (brokers, group) = (t.brokers(), unique("hubs"));
    let config = write_config_with(json!({"address": redis.url()}), |c| {
        // Channels `g<p>` keep every record; `live` keeps none.
        c["channel"]["without_namespace"]["history_size"] = json!(RECORDS);
        c["channel"]["without_namespace"]["history_ttl"] = json!("600s");
        c["channel"]["namespaces"][1]["allow_subscribe_for_client"] = json!(true);
        c["consumers"] = json!([{"enabled": true, "name": "plain", "type": "kafka", "kafka": {
            "brokers": [brokers], "topics": [topic], "consumer_group": group,
            "publication_data_mode": {"enabled": true}}}]);
    });
    let mut nodes = start_nodes(&config, 2).await;
    let (mut live, _) = Client::connect(&nodes[0].url(), "watcher").await;
    let r = subscribe(&mut live, 2, "locked:live").await;
    assert!(r.get("error").is_none(), "{r}");

    let producer = t.producer();
    let produce_topic = topic.clone();
    let produced = tokio::spawn(async move {
        for chunk in 0..RECORDS / 20 {
            let mut pending = Vec::new();
            for seq in chunk * 20..(chunk + 1) * 20 {
                let p = seq % PARTITIONS;
                let payload = json!({"seq": seq}).to_string();
                let channels = format!("g{p},locked:live");
                let headers =
                    rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                        key: "centrifugo-channels",
                        value: Some(channels.as_bytes()),
                    });
                let record = rdkafka::producer::FutureRecord::to(&produce_topic)
                    .key("k")
                    .payload(&payload)
                    .headers(headers)
                    .partition(p as i32);
                pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
            }
            for f in pending {
                f.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    });

    // A third of the way in, node 1 dies without a word; a little later a new node joins.
    eventually_async("a third of the stream published", || async {
        plain_published(&nodes[0]).await + plain_published(&nodes[1]).await >= (RECORDS / 3) as f64
    })
    .await;
    nodes[1].kill();
    eventually_async("node 0 took the dead node's partitions", || async {
        nodes[0]
            .metric("chorus_hub_consumer_partitions", "plain")
            .await
            == PARTITIONS as f64
    })
    .await;
    nodes.push(chorus_testkit::hub::HubProcess::start(common::hub_bin(), &config).await);
    eventually_async("the new node took some partitions", || async {
        nodes[2]
            .metric("chorus_hub_consumer_partitions", "plain")
            .await
            >= 1.0
    })
    .await;
    produced.await.unwrap();

    // Every record in its channel's history exactly once.
    let history_counts = || async {
        let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
        for p in 0..PARTITIONS {
            let h = api(
                &nodes[0],
                "history",
                json!({"channel": format!("g{p}"), "limit": RECORDS}),
            )
            .await;
            for pb in h["result"]["publications"].as_array().into_iter().flatten() {
                *counts
                    .entry(pb["data"]["seq"].as_u64().unwrap())
                    .or_default() += 1;
            }
        }
        counts
    };
    eventually_async("every record in history", || async {
        history_counts().await.len() as u64 == RECORDS
    })
    .await;
    let counts = history_counts().await;
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "records published more than once: {twice:?}"
    );
    // And on the history-less channel, what the watcher received.
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    while (seen.len() as u64) < RECORDS {
        let v = live
            .next_within(Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("the watcher got {} of {RECORDS}", seen.len()));
        if let Some(p) = v["push"].get("pub") {
            *seen.entry(p["data"]["seq"].as_u64().unwrap()).or_default() += 1;
        }
    }
    for v in live.quiet_for(Duration::from_secs(2)).await {
        if let Some(p) = v["push"].get("pub") {
            *seen.entry(p["data"]["seq"].as_u64().unwrap()).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once live: {twice:?}");
    assert_eq!(seen.len() as u64, RECORDS);
}

async fn plain_published(node: &chorus_testkit::hub::HubProcess) -> f64 {
    node.metric(
        "chorus_hub_consumer_records_total",
        r#"consumer="plain",outcome="published""#,
    )
    .await
}
