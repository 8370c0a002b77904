//! The sink against a real Kafka-protocol broker (tansu) and Amazon DynamoDB Local, each
//! started per test on free loopback ports, with the sink as its own process.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::dynamodb::{text, DynamoLocal};
use common::eventually;
use common::tansu::{ulid, unique, Tansu};
use common::{start_sink, HubProcess, SinkProcess};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

const TS: i64 = 1_763_800_000_000;

/// A `message.created` event for message `seq` of `chat`, with the live-only author
/// metadata the sink must not store.
fn created(chat: &str, seq: u64) -> String {
    json!({"v": 1, "event_id": ulid(seq * 2 + 1), "chat_id": chat, "ts": TS + seq as i64,
        "type": "message.created",
        "data": {"message_id": ulid(seq * 2),
                 "author": {"id": format!("u{}", seq % 7), "name": "Ann", "avatar": "https://img/a.png"},
                 "text": seq.to_string()}})
    .to_string()
}

fn chat_of(seq: u64) -> String {
    format!("c{}", seq % 25)
}

/// Produces every record and waits until the broker has all of them.
async fn produce_all(p: &FutureProducer, topic: &str, records: &[(String, String)]) {
    for chunk in records.chunks(500) {
        let sends = chunk.iter().map(|(key, payload)| {
            p.send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(60),
            )
        });
        for r in futures_util::future::join_all(sends).await {
            r.map_err(|(e, _)| e).unwrap();
        }
    }
}

fn messages(range: std::ops::Range<u64>) -> Vec<(String, String)> {
    range
        .map(|s| (chat_of(s), created(&chat_of(s), s)))
        .collect()
}

fn settings(t: &Tansu, d: &DynamoLocal, topic: &str, table: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA__BROKERS", t.brokers()),
        ("KAFKA__TOPIC", topic.to_owned()),
        ("KAFKA__GROUP", unique("sink")),
        ("DYNAMODB__ENDPOINT", d.endpoint()),
        ("DYNAMODB__TABLE", table.to_owned()),
        // A frozen DynamoDB is noticed after a second.
        ("DYNAMODB__ATTEMPT_TIMEOUT_MS", "1000".to_owned()),
        // A killed sink's partitions move to its restarted self sooner than the 45 s default.
        ("KAFKA__LIBRDKAFKA__SESSION.TIMEOUT.MS", "6000".to_owned()),
        ("LOG__LEVEL", "debug".to_owned()),
    ]
}

/// Waits until the sink has committed everything the topic holds.
async fn caught_up(sink: &SinkProcess, secs: u64) {
    for _ in 0..secs * 10 {
        let h = sink.health().await;
        if h["status"] == "ok"
            && h["kafka"]["lag"] == 0
            && h["pending"] == 0
            && sink.metric("chorus_sink_consumer_lag", "").await == 0.0
            && sink.metric("chorus_sink_items_written_total", "").await > 0.0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = sink.log_text();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    panic!(
        "the sink did not commit the whole topic in {secs} s; health {}; log tail:\n{}",
        sink.health().await,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// The stored items by (chat, message id).
async fn stored(
    d: &DynamoLocal,
    table: &str,
) -> BTreeMap<(String, String), chorus_history::model::Item> {
    d.scan(table)
        .await
        .into_iter()
        .map(|i| ((text(&i, "chat_id"), text(&i, "message_id")), i))
        .collect()
}

/// Compares key sets by what is missing and what is extra, so a failure stays readable.
fn assert_same<T: Ord + std::fmt::Debug>(actual: &BTreeSet<T>, expected: &BTreeSet<T>, what: &str) {
    let missing: Vec<_> = expected.difference(actual).take(5).collect();
    let extra: Vec<_> = actual.difference(expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} missing (first {missing:?}), {} extra (first {extra:?})",
        expected.difference(actual).count(),
        actual.difference(expected).count()
    );
}

/// Every message of `range` stored with exactly its own values: a key set cannot see a
/// wrong text, author or timestamp, nor a stray attribute.
fn assert_values(
    items: &BTreeMap<(String, String), chorus_history::model::Item>,
    range: std::ops::Range<u64>,
    chat: impl Fn(u64) -> String,
) {
    for seq in range {
        let item = items
            .get(&(chat(seq), ulid(seq * 2)))
            .unwrap_or_else(|| panic!("message {seq} missing"));
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["author_id", "chat_id", "created_at", "message_id", "text"],
            "message {seq}: no author name or avatar in history"
        );
        assert_eq!(text(item, "text"), seq.to_string(), "message {seq}");
        assert_eq!(
            text(item, "author_id"),
            format!("u{}", seq % 7),
            "message {seq}"
        );
        assert_eq!(
            text(item, "created_at"),
            (TS + seq as i64).to_string(),
            "message {seq}"
        );
    }
}

fn expected_keys(range: std::ops::Range<u64>) -> BTreeSet<(String, String)> {
    range.map(|s| (chat_of(s), ulid(s * 2))).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_messages_become_ten_thousand_items_then_edits_and_deletes_apply() {
    let t = Tansu::start().await;
    let d = DynamoLocal::start().await;
    let (topic, table) = (unique("chats"), unique("messages"));
    t.create_topic(&topic, 3).await;
    let p = t.producer();
    produce_all(&p, &topic, &messages(0..10_000)).await;
    let sink = start_sink(&settings(&t, &d, &topic, &table)).await;
    caught_up(&sink, 300).await;

    let items = stored(&d, &table).await;
    assert_eq!(items.len(), 10_000, "exactly one item per message");
    assert_same(
        &items.keys().cloned().collect(),
        &expected_keys(0..10_000),
        "stored messages",
    );
    assert_values(&items, 0..10_000, chat_of);
    assert_eq!(
        sink.metric("chorus_sink_items_written_total", "op=\"put\"")
            .await,
        10_000.0
    );

    // Edits update, deletes remove, and a change to a deleted message does not revive it.
    let mut changes = Vec::new();
    for seq in 0..20u64 {
        let chat = chat_of(seq);
        let (kind, data) = if seq < 10 {
            (
                "message.edited",
                json!({"message_id": ulid(seq * 2), "text": format!("edited {seq}")}),
            )
        } else {
            ("message.deleted", json!({"message_id": ulid(seq * 2)}))
        };
        let e = json!({"v": 1, "event_id": ulid(1_000_000 + seq), "chat_id": chat, "ts": TS + 99,
                        "type": kind, "data": data});
        changes.push((chat, e.to_string()));
    }
    let late_edit = json!({"v": 1, "event_id": ulid(2_000_000), "chat_id": chat_of(15), "ts": TS,
        "type": "message.edited", "data": {"message_id": ulid(30), "text": "too late"}});
    changes.push((chat_of(15), late_edit.to_string()));
    produce_all(&p, &topic, &changes).await;
    eventually("edits and deletes to land", 120, || async {
        sink.metric("chorus_sink_items_written_total", "op=\"delete\"")
            .await
            == 10.0
            && sink
                .metric("chorus_sink_items_written_total", "op=\"update\"")
                .await
                == 10.0
    })
    .await;
    caught_up(&sink, 60).await;
    let items = stored(&d, &table).await;
    assert_eq!(items.len(), 9_990);
    assert_eq!(text(&items[&(chat_of(3), ulid(6))], "text"), "edited 3");
    assert_eq!(
        text(&items[&(chat_of(3), ulid(6))], "edited_at"),
        (TS + 99).to_string()
    );
    assert!(
        !items.contains_key(&(chat_of(15), ulid(30))),
        "a deleted message stays deleted"
    );
    assert_eq!(text(&items[&(chat_of(25), ulid(50))], "text"), "25");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thirty_second_dynamodb_outage_loses_nothing_while_the_hub_delivers_live() {
    let t = Tansu::start().await;
    let d = DynamoLocal::start().await;
    let (topic, table) = (unique("chats"), unique("messages"));
    t.create_topic(&topic, 1).await;
    let hub = HubProcess::live(&t.brokers(), &topic, &unique("hub")).await;
    let (mut client, _) = common::client::Client::connect(&hub.url(), "u1").await;
    client
        .send(json!({"id": 2, "subscribe": {"channel": "chat:c0"}}))
        .await;
    assert!(client.reply(2).await.get("error").is_none());
    let delivered = Arc::new(parking_lot::Mutex::new(Vec::<u64>::new()));
    let reader = {
        let delivered = delivered.clone();
        tokio::spawn(async move {
            loop {
                let push = client.next_pub().await;
                let seq = push["push"]["pub"]["data"]["data"]["text"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                delivered.lock().push(seq);
            }
        })
    };
    // Small bounds, so the outage fills them: the sink must stop reading, not grow.
    let mut cfg = settings(&t, &d, &topic, &table);
    cfg.push(("BATCH__MAX_ITEMS", "100".to_owned()));
    cfg.push(("BATCH__MAX_PENDING", "300".to_owned()));
    let sink = start_sink(&cfg).await;
    let p = t.producer();
    let one = |s: u64| vec![("c0".to_owned(), created("c0", s))];

    for s in 0..200 {
        produce_all(&p, &topic, &one(s)).await;
    }
    caught_up(&sink, 120).await;

    d.pause();
    let mut seq = 200;
    let outage = tokio::time::Instant::now();
    let mut saw_outage = false;
    while outage.elapsed() < Duration::from_secs(30) {
        produce_all(&p, &topic, &one(seq)).await;
        seq += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !saw_outage && seq % 25 == 0 {
            let h = sink.health().await;
            saw_outage = h["status"] == "degraded"
                && h["dynamodb"]["up"] == false
                && sink.metric("chorus_sink_dynamodb_up", "").await == 0.0;
        }
    }
    let produced_in_outage = seq;
    // Still frozen: the hub delivered everything live, the sink committed none of it.
    eventually(
        "the hub to deliver every message live during the outage",
        30,
        || {
            let n = delivered.lock().len() as u64;
            async move { n >= produced_in_outage }
        },
    )
    .await;
    let h = sink.health().await;
    let pending = sink.metric("chorus_sink_pending_records", "").await;
    assert!(
        (300.0..=400.0).contains(&pending),
        "the sink holds at most max_pending + one flush, and has filled it: {pending}"
    );
    assert!(
        saw_outage,
        "/health and chorus_sink_dynamodb_up showed the outage"
    );
    assert!(
        h["kafka"]["lag"].as_i64().unwrap() > 0,
        "nothing committed while DynamoDB is down: {h}"
    );
    let retries = sink
        .metric("chorus_sink_retries_total", "reason=\"unavailable\"")
        .await;
    assert!(retries > 0.0);
    eprintln!(
        "outage of {:?}: {} messages produced during it, all delivered live; lag {}, {pending} held, {retries} retries",
        outage.elapsed(),
        produced_in_outage - 200,
        h["kafka"]["lag"]
    );

    d.resume();
    for s in seq..seq + 200 {
        produce_all(&p, &topic, &one(s)).await;
    }
    let total = seq + 200;
    caught_up(&sink, 180).await;
    let items = stored(&d, &table).await;
    let keys: BTreeSet<_> = items.keys().map(|(_, m)| m.clone()).collect();
    assert_same(
        &keys,
        &(0..total).map(|s| ulid(s * 2)).collect(),
        "every message stored once",
    );
    assert_values(&items, 0..total, |_| "c0".to_owned());
    eventually("the hub to deliver the rest", 30, || {
        let n = delivered.lock().len() as u64;
        async move { n >= total }
    })
    .await;
    assert_eq!(
        *delivered.lock(),
        (0..total).collect::<Vec<_>>(),
        "live delivery in order, none lost"
    );
    assert_eq!(sink.health().await["dynamodb"]["up"], true);
    reader.abort();
    drop(hub);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_killed_mid_batch_loses_nothing_and_duplicates_collapse() {
    let t = Tansu::start().await;
    let d = DynamoLocal::start().await;
    let (topic, table) = (unique("chats"), unique("messages"));
    t.create_topic(&topic, 2).await;
    produce_all(&t.producer(), &topic, &messages(0..6_000)).await;
    let mut cfg = settings(&t, &d, &topic, &table);
    cfg.push(("BATCH__MAX_ITEMS", "200".to_owned()));
    let mut sink = start_sink(&cfg).await;
    eventually("the first items", 120, || async {
        sink.metric("chorus_sink_items_written_total", "").await >= 1_000.0
    })
    .await;
    let before = sink.metric("chorus_sink_items_written_total", "").await;
    sink.kill9();
    assert!(before < 6_000.0, "killed mid-stream ({before} written)");
    let stored_at_kill = stored(&d, &table).await.len();
    sink.restart().await; // the same consumer group
    caught_up(&sink, 300).await;
    let after = sink.metric("chorus_sink_items_written_total", "").await;
    let items = stored(&d, &table).await;
    let keys: BTreeSet<_> = items.keys().cloned().collect();
    assert_same(
        &keys,
        &expected_keys(0..6_000),
        "every message stored, nothing else",
    );
    // Rewritten onto themselves: every item holds its own message's values, not another's.
    assert_values(&items, 0..6_000, chat_of);
    eprintln!(
        "killed with {stored_at_kill} items stored; the restart wrote {after}, {} of them again",
        stored_at_kill as f64 + after - 6_000.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_flushes_and_commits_so_a_restart_rewrites_nothing() {
    let t = Tansu::start().await;
    let d = DynamoLocal::start().await;
    let (topic, table) = (unique("chats"), unique("messages"));
    t.create_topic(&topic, 2).await;
    produce_all(&t.producer(), &topic, &messages(0..4_000)).await;
    let mut cfg = settings(&t, &d, &topic, &table);
    cfg.push(("BATCH__MAX_ITEMS", "100".to_owned()));
    cfg.push(("BATCH__MAX_PENDING", "200".to_owned()));
    let mut sink = start_sink(&cfg).await;
    eventually("the first items", 120, || async {
        sink.metric("chorus_sink_items_written_total", "").await >= 500.0
    })
    .await;
    assert!(sink.terminate(), "a clean exit; log:\n{}", sink.log_text());
    let first = stored(&d, &table).await.len();
    assert!(first < 4_000, "stopped mid-stream ({first} stored)");
    let sink = start_sink(&cfg).await;
    caught_up(&sink, 300).await;
    let second = sink.metric("chorus_sink_items_written_total", "").await as usize;
    assert_eq!(stored(&d, &table).await.len(), 4_000);
    assert_eq!(
        first + second,
        4_000,
        "what the first run wrote it committed, so nothing was written twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_records_reach_the_dead_letter_topic_while_the_rest_flows() {
    let t = Tansu::start().await;
    let d = DynamoLocal::start().await;
    let (topic, table) = (unique("chats"), unique("messages"));
    t.create_topic(&topic, 1).await;
    let huge = json!({"v": 1, "event_id": ulid(9_001), "chat_id": "c1", "ts": TS,
        "type": "message.created",
        "data": {"message_id": ulid(9_000), "author": {"id": "u1"}, "text": "x".repeat(450 * 1024)}});
    let mut version2: serde_json::Value = serde_json::from_str(&created("c1", 2)).unwrap();
    version2["v"] = json!(2);
    let records = vec![
        ("c1".to_owned(), created("c1", 0)),
        ("c1".to_owned(), "{this is not json".to_owned()),
        ("c1".to_owned(), huge.to_string()),
        ("c1".to_owned(), version2.to_string()),
        ("c1".to_owned(), created("c1", 1)),
    ];
    let p = t.producer();
    for r in &records {
        produce_all(&p, &topic, std::slice::from_ref(r)).await;
    }
    let sink = start_sink(&settings(&t, &d, &topic, &table)).await;
    caught_up(&sink, 120).await;
    let items = stored(&d, &table).await;
    assert_eq!(
        items
            .keys()
            .map(|(_, m)| m.clone())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([ulid(0), ulid(2)]),
        "the good records around the poison ones are stored"
    );
    assert_eq!(sink.metric("chorus_sink_dead_letters_total", "").await, 3.0);
    assert_eq!(
        sink.metric("chorus_sink_dead_letters_total", "reason=\"too_large\"")
            .await,
        1.0
    );

    let dlq = t.reader(&format!("{topic}.dlq"));
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(60), dlq.recv())
            .await
            .unwrap()
            .unwrap();
        let header = |k: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == k))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap()
        };
        assert_eq!(m.key(), Some(&b"c1"[..]));
        assert_eq!(header("chorus-dlq-topic"), topic);
        seen.push((
            header("chorus-dlq-offset"),
            header("chorus-dlq-reason"),
            m.payload().unwrap().len(),
        ));
    }
    seen.sort();
    assert_eq!(seen[0].0, "1");
    assert!(seen[0].1.contains("not a chat event"), "{:?}", seen[0]);
    assert_eq!(seen[1].0, "2");
    assert!(seen[1].1.contains("400 KB"), "{:?}", seen[1]);
    assert!(seen[1].2 > 450 * 1024, "the record is kept whole");
    assert_eq!(seen[2].0, "3");
    assert!(seen[2].1.contains("version 2"), "{:?}", seen[2]);
}

/// A sink `kill -9`ed mid-stream and restarted at once, with the default session timeout (the
/// dead member is still in the group when the new one joins), gets partitions back by itself
/// and stores every record: at first it holds none while the group lags, and says so in
/// `/health` (`degraded`, `starved`). With static membership (`kafka.instance_id`) it takes
/// its predecessor's place at once; without, when the dead member's session ends.
async fn killed_and_restarted_at_once(static_member: bool) {
    let t = Tansu::start().await;
    let d = DynamoLocal::start().await;
    let (topic, table) = (unique("chats"), unique("messages"));
    t.create_topic(&topic, 2).await;
    produce_all(&t.producer(), &topic, &messages(0..3_000)).await;
    let mut cfg: Vec<(&'static str, String)> = settings(&t, &d, &topic, &table)
        .into_iter()
        .filter(|(k, _)| !k.contains("SESSION.TIMEOUT"))
        .collect();
    cfg.push(("BATCH__MAX_ITEMS", "100".to_owned()));
    if static_member {
        cfg.push(("KAFKA__INSTANCE_ID", unique("sink-1")));
    }
    let mut sink = start_sink(&cfg).await;
    eventually("the first items", 120, || async {
        sink.metric("chorus_sink_items_written_total", "").await >= 300.0
    })
    .await;
    sink.kill9();
    sink.restart().await;
    let restarted = std::time::Instant::now();
    // More records while it finds its feet: these too must be stored.
    produce_all(&t.producer(), &topic, &messages(3_000..3_500)).await;
    let mut starved_seen = false;
    let mut last = serde_json::Value::Null;
    for _ in 0..2_400 {
        let h = sink.health().await;
        if h["kafka"]["starved"] == true {
            starved_seen = true;
            assert_eq!(h["status"], "degraded", "starving is not ok: {h}");
        }
        if h["status"] == "ok" && h["kafka"]["lag"] == 0 && h["pending"] == 0 {
            break;
        }
        last = h;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    caught_up(&sink, 5).await;
    assert!(
        starved_seen || static_member,
        "the restarted sink first held nothing, and said so"
    );
    eprintln!(
        "restarted at once (static membership: {static_member}): caught up after {:?}; last health before: {last}",
        restarted.elapsed()
    );
    let items = stored(&d, &table).await;
    assert_same(
        &items.keys().cloned().collect(),
        &expected_keys(0..3_500),
        "every message stored, nothing else",
    );
    assert_values(&items, 0..3_500, chat_of);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_killed_and_restarted_at_once_gets_its_partitions_back() {
    killed_and_restarted_at_once(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_member_killed_and_restarted_at_once_takes_its_place() {
    killed_and_restarted_at_once(true).await;
}
