//! The hub's Kafka consumer against a real broker (tansu on loopback), one topic per test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chorus_hub::config::{load_str, Format};
use chorus_hub::listener::FdBudgetListener;
use chorus_hub::{Node, NodeParts};
use chorus_testkit::hub::HubProcess;
use common::tansu::{chat_event, unique, Tansu};
use common::{config_json, Client};
use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};

/// A hub in this process with the given `consumers` entries.
struct KafkaHub {
    node: Arc<Node>,
    url: String,
    consumers: Vec<chorus_hub::consumer::kafka::Running>,
}

impl KafkaHub {
    /// Stops the consumers while the broker still runs: a consumer dropped after its broker
    /// is gone waits out librdkafka's close timeouts.
    async fn stop(self) {
        self.node.shutdown.cancel();
        for c in self.consumers {
            c.task.await.unwrap();
        }
    }
}

/// The common test config, with Centrifugo's default ping timing: these tests wait on Kafka
/// for seconds without reading, and the raw test client does not answer pings.
fn base_config() -> Value {
    let mut cfg: Value = serde_json::from_str(&config_json("")).unwrap();
    cfg["client"]["ping_interval"] = json!("25s");
    cfg["client"]["pong_timeout"] = json!("8s");
    // Chat channels fed by Kafka take no client publications (config validation insists).
    cfg["channel"]["namespaces"][0]["allow_publish_for_subscriber"] = json!(false);
    cfg
}

async fn hub(consumers: Value) -> KafkaHub {
    hub_with(consumers, |_| {}).await
}

/// `hub` with a change to its config before it starts.
async fn hub_with(consumers: Value, tweak: impl FnOnce(&mut Value)) -> KafkaHub {
    let mut cfg = base_config();
    cfg["consumers"] = consumers;
    tweak(&mut cfg);
    let config = load_str(&cfg.to_string(), Format::Json, "test", Vec::new())
        .unwrap()
        .config;
    chorus_hub::config::validate::validate(&config).unwrap();
    let node = Node::new(config, NodeParts::default()).unwrap();
    let running = chorus_hub::consumer::start(&node).unwrap();
    assert!(chorus_hub::consumer::wait_ready(&running, Duration::from_secs(30)).await);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = FdBudgetListener::new(tcp, 10_000, node.metrics.connections_refused.clone());
    tokio::spawn(chorus_hub::server::run(
        node.clone(),
        listener,
        Duration::from_secs(1),
    ));
    KafkaHub {
        node,
        url: format!("ws://{addr}/connection/websocket"),
        consumers: running,
    }
}

/// A new topic of `partitions` and a hub reading it in chat-event mode.
async fn chat_hub(t: &Tansu, topic: &str, partitions: i32) -> KafkaHub {
    chat_hub_with(t, topic, partitions, |_| {}).await
}

async fn chat_hub_with(
    t: &Tansu,
    topic: &str,
    partitions: i32,
    tweak: impl FnOnce(&mut Value),
) -> KafkaHub {
    t.create_topic(topic, partitions).await;
    hub_with(
        json!([kafka_consumer(
            "chats",
            t,
            topic,
            json!({"chat_event_mode": {"enabled": true}})
        )]),
        tweak,
    )
    .await
}

fn kafka_consumer(name: &str, t: &Tansu, topic: &str, mode: Value) -> Value {
    let mut kafka = json!({
        "brokers": [t.brokers()], "topics": [topic], "consumer_group": unique("g"),
    });
    kafka
        .as_object_mut()
        .unwrap()
        .extend(mode.as_object().unwrap().clone());
    json!({"enabled": true, "name": name, "type": "kafka", "kafka": kafka})
}

async fn subscribe(c: &mut Client, id: u64, channel: &str) -> Value {
    c.send(json!({"id": id, "subscribe": {"channel": channel}}))
        .await;
    c.reply(id).await
}

/// The `text` of a chat event push (its sequence number) and the push's channel.
fn seq_of(push: &Value) -> (String, u64) {
    let p = &push["push"];
    let text = p["pub"]["data"]["data"]["text"].as_str().unwrap();
    (
        p["channel"].as_str().unwrap().to_owned(),
        text.parse().unwrap(),
    )
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn each_record_shape_reaches_subscribers_intact() {
    let t = Tansu::start().await;
    let (api_topic, data_topic, chat_topic) = (unique("api"), unique("data"), unique("chat"));
    for topic in [&api_topic, &data_topic, &chat_topic] {
        t.create_topic(topic, 1).await;
    }
    let h = hub(json!([
        kafka_consumer("api", &t, &api_topic, json!({})),
        kafka_consumer(
            "data",
            &t,
            &data_topic,
            json!({"publication_data_mode": {"enabled": true}})
        ),
        kafka_consumer(
            "chats",
            &t,
            &chat_topic,
            json!({"chat_event_mode": {"enabled": true}})
        ),
    ]))
    .await;
    let (mut c, _) = Client::connect(&h.url, "u1").await;
    for (i, ch) in ["news", "alerts", "chat:7"].iter().enumerate() {
        assert!(subscribe(&mut c, 10 + i as u64, ch)
            .await
            .get("error")
            .is_none());
    }
    let p = t.producer();
    let cmd = json!({"method": "publish", "payload": {"channel": "news", "data": {"text": "héllo ✓", "n": [1, 2]}}});
    t.produce(&p, &api_topic, None, "k", &cmd.to_string(), &[])
        .await;
    let got = c.next_pub().await;
    assert_eq!(got["push"]["channel"], "news");
    assert_eq!(
        got["push"]["pub"]["data"],
        json!({"text": "héllo ✓", "n": [1, 2]})
    );

    let bcast = json!({"method": "broadcast", "payload": {"channels": ["news", "alerts"], "data": {"b": 1}}});
    t.produce(&p, &api_topic, None, "k", &bcast.to_string(), &[])
        .await;
    let mut channels = vec![
        c.next_pub().await["push"]["channel"].clone(),
        c.next_pub().await["push"]["channel"].clone(),
    ];
    channels.sort_by_key(|v| v.to_string());
    assert_eq!(channels, vec![json!("alerts"), json!("news")]);

    // Publication data mode, with the same idempotency key twice: delivered once.
    for _ in 0..2 {
        t.produce(
            &p,
            &data_topic,
            None,
            "k",
            r#"{"raw":true}"#,
            &[
                ("centrifugo-channels", "alerts"),
                ("centrifugo-idempotency-key", "once"),
                ("centrifugo-tag-kind", "raw"),
            ],
        )
        .await;
    }
    t.produce(
        &p,
        &data_topic,
        None,
        "k",
        r#"{"raw":2}"#,
        &[("centrifugo-channels", "alerts")],
    )
    .await;
    let got = c.next_pub().await;
    assert_eq!(got["push"]["pub"]["data"], json!({"raw": true}));
    assert_eq!(got["push"]["pub"]["tags"], json!({"kind": "raw"}));
    assert_eq!(
        c.next_pub().await["push"]["pub"]["data"],
        json!({"raw": 2}),
        "the duplicate was dropped"
    );

    let event = chat_event("7", 1);
    t.produce(&p, &chat_topic, None, "7", &event, &[]).await;
    let got = c.next_pub().await;
    assert_eq!(got["push"]["channel"], "chat:7");
    assert_eq!(
        got["push"]["pub"]["data"],
        serde_json::from_str::<Value>(&event).unwrap()
    );
    assert!(
        got["push"]["pub"]["offset"].as_u64().unwrap() > 0,
        "chat events are positioned"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_keep_partition_order() {
    const N: u64 = 10_000;
    let t = Tansu::start().await;
    let topic = unique("order");
    // The whole burst may sit in this client's queue while a busy machine starves the reader,
    // and the default 1 MiB would then disconnect it as slow (3008). That policy has its own
    // test (websocket.rs); this one is about order, so the queue holds every record.
    let h = chat_hub_with(&t, &topic, 3, |cfg| {
        cfg["client"]["queue_max_size"] = json!(64 * 1024 * 1024);
    })
    .await;
    let (mut c, _) = Client::connect(&h.url, "u1").await;
    for p in 0..3 {
        subscribe(&mut c, 10 + p, &format!("chat:p{p}")).await;
    }
    // One chat per partition; sent without waiting for each, as a real producer would, while
    // the client reads, as a real client would.
    let producer = t.producer();
    let produce_topic = topic.clone();
    let produced = tokio::spawn(async move {
        let mut pending = Vec::new();
        for seq in 0..N {
            let p = (seq % 3) as i32;
            let chat = format!("p{p}");
            let payload = chat_event(&chat, seq);
            let record = rdkafka::producer::FutureRecord::to(&produce_topic)
                .key(&chat)
                .payload(&payload)
                .partition(p);
            pending.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        }
        for f in pending {
            f.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });
    let mut last: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for _ in 0..N {
        let push = c.next_pub().await;
        let (channel, seq) = seq_of(&push);
        let offset = push["push"]["pub"]["offset"].as_u64().unwrap();
        if let Some((prev_seq, prev_offset)) = last.get(&channel) {
            assert_eq!(seq, prev_seq + 3, "{channel}: out of order or missing");
            assert!(offset > *prev_offset);
        } else {
            assert!(seq < 3, "{channel} started at {seq}");
        }
        last.insert(channel, (seq, offset));
    }
    assert_eq!(last.len(), 3);
    produced.await.unwrap();
    let delivered = h
        .node
        .metrics
        .consumer_records
        .with_label_values(&["chats", "published"])
        .get();
    assert_eq!(delivered, N);
    h.stop().await;
}

#[tokio::test]
async fn a_malformed_record_is_dead_lettered_and_the_partition_goes_on() {
    let t = Tansu::start().await;
    let topic = unique("dlq");
    let h = chat_hub(&t, &topic, 1).await;
    let (mut c, _) = Client::connect(&h.url, "u1").await;
    subscribe(&mut c, 2, "chat:9").await;
    let p = t.producer();
    t.produce(&p, &topic, None, "9", &chat_event("9", 1), &[])
        .await;
    t.produce(&p, &topic, None, "9", "{not json", &[("trace", "abc")])
        .await;
    // An event for a chat id no channel allows is as unusable as bad JSON.
    t.produce(&p, &topic, None, "9", &chat_event("no spaces", 2), &[])
        .await;
    t.produce(&p, &topic, None, "9", &chat_event("9", 3), &[])
        .await;
    assert_eq!(seq_of(&c.next_pub().await).1, 1);
    assert_eq!(
        seq_of(&c.next_pub().await).1,
        3,
        "the partition went on past the bad records"
    );

    let dlq = t.reader(&format!("{topic}.dlq"));
    let mut dead = Vec::new();
    while dead.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(30), dlq.recv())
            .await
            .expect("dead letters arrive")
            .unwrap();
        let headers: BTreeMap<String, String> = m
            .headers()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap()).into_owned(),
                )
            })
            .collect();
        dead.push((
            String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
            headers,
        ));
    }
    assert_eq!(dead[0].0, "{not json");
    assert_eq!(dead[0].1["trace"], "abc", "original headers are kept");
    assert_eq!(dead[0].1["chorus-dlq-offset"], "1");
    assert!(
        dead[0].1["chorus-dlq-reason"].contains("not a chat event"),
        "{:?}",
        dead[0].1
    );
    assert!(
        dead[1].1["chorus-dlq-reason"].contains("chat_id"),
        "{:?}",
        dead[1].1
    );
    let dead_lettered = h
        .node
        .metrics
        .consumer_records
        .with_label_values(&["chats", "dead_lettered"])
        .get();
    assert_eq!(dead_lettered, 2);
    h.stop().await;
}

#[tokio::test]
async fn consumption_resumes_after_the_broker_restarts() {
    let mut t = Tansu::start().await;
    let topic = unique("restart");
    let h = chat_hub(&t, &topic, 1).await;
    let (mut c, _) = Client::connect(&h.url, "u1").await;
    subscribe(&mut c, 2, "chat:r").await;
    {
        let p = t.producer();
        t.produce(&p, &topic, None, "r", &chat_event("r", 1), &[])
            .await;
        assert_eq!(seq_of(&c.next_pub().await).1, 1);
    }
    t.stop();
    let node = h.node.clone();
    let up = node.metrics.consumer_up.with_label_values(&["chats"]);
    eventually("/health and metrics to report the broker down", || {
        node.consumers.snapshots().iter().any(|s| !s.healthy()) && up.get() == 0
    })
    .await;
    // Records sent while the broker is down wait in the producer and land once it is back;
    // every one of them must then reach the client, once and in order.
    let p = t.producer();
    let during = {
        let (p, topic) = (p.clone(), topic.clone());
        tokio::spawn(async move {
            let sends = (2..=21).map(|seq| {
                let payload = chat_event("r", seq);
                let p = p.clone();
                let topic = topic.clone();
                async move {
                    p.send(
                        rdkafka::producer::FutureRecord::to(&topic)
                            .key("r")
                            .payload(&payload),
                        Duration::from_secs(60),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
                }
            });
            // One after another, so their order on the partition is known.
            for s in sends {
                s.await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    t.restart().await;
    during.await.unwrap();
    t.produce(&p, &topic, None, "r", &chat_event("r", 22), &[])
        .await;
    // The hub's consumer comes back on its own backoff (librdkafka's reconnect and its own,
    // up to 5 s each), not the producer's: wait for it, then read what it delivered.
    let published = node
        .metrics
        .consumer_records
        .with_label_values(&["chats", "published"]);
    eventually("the hub to publish what was sent during the outage", || {
        published.get() >= 22
    })
    .await;
    let got: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 2..=22 {
            v.push(seq_of(&c.next_pub().await).1);
        }
        v
    };
    assert_eq!(
        got,
        (2..=22).collect::<Vec<_>>(),
        "consumption resumed by itself, nothing lost or repeated"
    );
    eventually("/health to recover", || {
        node.consumers.snapshots().iter().all(|s| s.healthy())
    })
    .await;
    assert_eq!(up.get(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_client_recovers_across_a_hub_kill_without_gap_or_duplicate() {
    const N: u64 = 400;
    let t = Tansu::start().await;
    let topic = unique("hubkill");
    t.create_topic(&topic, 2).await;
    let mut cfg = base_config();
    // History long enough to hold everything the client misses while the hub restarts.
    cfg["channel"]["namespaces"][0]["history_size"] = json!(1000);
    cfg["consumers"] = json!([kafka_consumer(
        "chats",
        &t,
        &topic,
        json!({"chat_event_mode": {"enabled": true}})
    )]);
    let path = std::env::temp_dir().join(format!("{}.json", unique("hub-config")));
    std::fs::write(&path, cfg.to_string()).unwrap();

    let mut first = HubProcess::start(common::hub_bin(), &path).await;
    let (mut c, _) = Client::connect(&first.url(), "u1").await;
    let reply = subscribe(&mut c, 2, "chat:k").await;
    let mut epoch = reply["subscribe"]["epoch"].as_str().unwrap().to_owned();

    // A steady producer, running across the kill.
    let producer_topic = topic.clone();
    let brokers = t.brokers();
    let producer = tokio::spawn(async move {
        let p: rdkafka::producer::FutureProducer = rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("linger.ms", "0")
            .create()
            .unwrap();
        for seq in 0..N {
            let payload = chat_event("k", seq);
            let r = rdkafka::producer::FutureRecord::to(&producer_topic)
                .key("k")
                .payload(&payload);
            p.send(r, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)
                .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let mut seen = Vec::new();
    let mut offset = 0;
    while seen.len() < 120 {
        let push = c.next_pub().await;
        offset = push["push"]["pub"]["offset"].as_u64().unwrap();
        seen.push(seq_of(&push).1);
    }
    first.kill();
    // Drain whatever was already on the wire; the connection then ends.
    while let Ok(v) = c.next().await {
        if v["push"].get("pub").is_some() {
            offset = v["push"]["pub"]["offset"].as_u64().unwrap();
            seen.push(seq_of(&v).1);
        }
    }

    let second = HubProcess::start(common::hub_bin(), &path).await;
    let (mut c, _) = Client::connect(&second.url(), "u1").await;
    c.send(json!({"id": 3, "subscribe": {"channel": "chat:k", "recover": true, "offset": offset, "epoch": epoch}}))
        .await;
    let reply = c.reply(3).await;
    let sub = &reply["subscribe"];
    assert_eq!(sub["recovered"], true, "{reply}");
    epoch = sub["epoch"].as_str().unwrap().to_owned();
    assert!(!epoch.is_empty());
    for p in sub["publications"].as_array().cloned().unwrap_or_default() {
        seen.push(p["data"]["data"]["text"].as_str().unwrap().parse().unwrap());
    }
    while seen.len() < N as usize {
        seen.push(seq_of(&c.next_pub().await).1);
    }
    producer.await.unwrap();
    assert_eq!(
        seen,
        (0..N).collect::<Vec<_>>(),
        "every record once, in order"
    );
    let _ = std::fs::remove_file(&path);
}
