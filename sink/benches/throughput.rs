//! The sink's write rate against the raw BatchWriteItem rate of a minimal writer, on the same
//! DynamoDB Local, in one run: a warm-up (DynamoDB Local's JVM speeds up as its JIT warms),
//! then raw, sink, raw, sink, raw; the sinks' mean is compared with the raws' mean, so drift
//! either way (warming, a table that slows as it fills) evens out.
//!
//! Needs a Kafka-protocol broker and DynamoDB Local; `scripts/bench-sink` starts both on
//! loopback and runs this with `cargo bench -p chorus-sink --bench throughput`. Without
//! `CHORUS_BENCH_BROKERS` and `CHORUS_BENCH_DYNAMODB` it says so and exits.
//!
//! - raw: N items of the shape the sink writes, built up front, sent as 25-item
//!   BatchWriteItem calls with `CONCURRENCY` in flight, unprocessed items resent.
//! - sink: N `message.created` events produced to a 3-partition topic first, then the sink
//!   (in this process, default settings but `CONCURRENCY`) from start to all committed; its
//!   rate is taken between its first and its last write, so the consumer group join is not
//!   counted against it (it is reported apart).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_history::model::{change_of, Change};
use chorus_history::store::{put_request, Store};
use chorus_sink::config::Config;
use futures_util::stream::{self, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A ULID-shaped id: digits are Crockford base32 too, and zero-padding keeps them in order.
fn ulid(n: u64) -> String {
    format!("01{n:024}")
}

fn event(seq: u64) -> (String, String) {
    let chat = format!("c{}", seq % 100);
    let payload = serde_json::json!({"v": 1, "event_id": ulid(seq * 2 + 1), "chat_id": chat,
        "ts": 1_763_800_000_000_i64 + seq as i64, "type": "message.created",
        "data": {"message_id": ulid(seq * 2), "author": {"id": format!("u{}", seq % 50), "name": "Ann"},
                 "text": format!("message number {seq}, about as long as a chat line is")}});
    (chat, payload.to_string())
}

fn table_config(endpoint: &str, table: &str) -> chorus_history::DynamoDb {
    chorus_history::DynamoDb {
        endpoint: endpoint.to_owned(),
        table: table.to_owned(),
        ..Default::default()
    }
}

async fn ready_table(store: &Store) {
    store.create_table().await.expect("create table");
    while !store.table_ready().await.expect("describe table") {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The minimal writer: items/s.
async fn raw(endpoint: &str, n: u64, concurrency: usize) -> f64 {
    let table = format!("raw-{}", uuid_like());
    let store = Arc::new(Store::new(&table_config(endpoint, &table)).await);
    ready_table(&store).await;
    // The sink's own item for each event, so both writers write the same shape.
    let chunks: Vec<Vec<_>> = (0..n)
        .map(
            |seq| match change_of(event(seq).1.as_bytes()).expect("a valid event") {
                Some((_, Change::Put(item))) => put_request(item),
                other => unreachable!("message.created is a put, not {other:?}"),
            },
        )
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[_]>::to_vec)
        .collect();
    let started = Instant::now();
    stream::iter(chunks)
        .map(|mut chunk| {
            let store = store.clone();
            async move {
                while !chunk.is_empty() {
                    chunk = store.batch_write(chunk).await.expect("batch write");
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    n as f64 / started.elapsed().as_secs_f64()
}

/// This process's CPU time so far (user + system), from /proc.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn uuid_like() -> String {
    format!("{:x}{:x}", std::process::id(), fastrand::u64(..))
}

async fn produce(brokers: &str, topic: &str, n: u64) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    admin
        .create_topics(
            &[NewTopic::new(topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let records: Vec<(String, String)> = (0..n).map(event).collect();
    for chunk in records.chunks(1000) {
        let sends = chunk.iter().map(|(k, v)| {
            p.send(
                FutureRecord::to(topic).key(k).payload(v),
                Duration::from_secs(60),
            )
        });
        for r in futures_util::future::join_all(sends).await {
            r.map_err(|(e, _)| e).expect("produce");
        }
    }
}

/// Runs the sink over `n` produced events: (items/s between first and last write, seconds
/// from start to the first write, CPU seconds from start to the last write).
async fn sink(brokers: &str, endpoint: &str, n: u64, concurrency: usize) -> (f64, f64, f64) {
    let topic = format!("bench-{}", uuid_like());
    produce(brokers, &topic, n).await;
    let mut config = Config::default();
    config.kafka.brokers = brokers.to_owned();
    config.kafka.topic = topic.clone();
    config.kafka.group = format!("bench-sink-{}", uuid_like());
    config.dynamodb = table_config(endpoint, &format!("sink-{}", uuid_like()));
    config.batch.concurrency = concurrency;
    config.log.level = "warn".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let cpu_at_start = cpu_secs();
    let task = tokio::spawn(chorus_sink::run(config, listener, shutdown.clone()));
    let client = reqwest::Client::new();
    let written = || async {
        let text = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(
            text.lines()
                .filter(|l| l.starts_with("chorus_sink_items_written_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64,
        )
    };
    let (mut first, mut at_first) = (None, 0);
    loop {
        let w = written().await.unwrap_or(0);
        if first.is_none() && w > 0 {
            first = Some(Instant::now());
            at_first = w;
        }
        if w >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = cpu_secs() - cpu_at_start;
    let first = first.expect("written");
    let rate = (n - at_first) as f64 / first.elapsed().as_secs_f64();
    let startup = (first - started).as_secs_f64();
    shutdown.cancel();
    task.await.expect("join").expect("sink ran");
    (rate, startup, cpu)
}

fn main() {
    let (Ok(brokers), Ok(endpoint)) = (
        std::env::var("CHORUS_BENCH_BROKERS"),
        std::env::var("CHORUS_BENCH_DYNAMODB"),
    ) else {
        eprintln!("throughput: set CHORUS_BENCH_BROKERS and CHORUS_BENCH_DYNAMODB (scripts/bench-sink does)");
        return;
    };
    let n: u64 = env("CHORUS_BENCH_ITEMS", "50000")
        .parse()
        .expect("CHORUS_BENCH_ITEMS");
    let concurrency: usize = env("CHORUS_BENCH_CONCURRENCY", "8")
        .parse()
        .expect("CHORUS_BENCH_CONCURRENCY");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // DynamoDB Local's JVM runs several times faster once its JIT has warmed up.
        let warm = raw(&endpoint, n, concurrency).await;
        eprintln!("warm-up (not counted): {warm:.0} items/s");
        // raw, sink, raw, sink, raw: each sink run sits between two raw runs.
        let (mut raws, mut sinks, mut raw_cpu, mut sink_cpu, mut startup) =
            (Vec::new(), Vec::new(), 0.0, 0.0, 0.0);
        for round in 0..3 {
            let cpu0 = cpu_secs();
            let r = raw(&endpoint, n, concurrency).await;
            raw_cpu += cpu_secs() - cpu0;
            eprintln!("raw writer: {r:.0} items/s");
            raws.push(r);
            if round == 2 {
                break;
            }
            let (rate, start, cpu) = sink(&brokers, &endpoint, n, concurrency).await;
            eprintln!("sink: {rate:.0} items/s (first write {start:.2} s after start)");
            sinks.push(rate);
            sink_cpu += cpu;
            startup = start;
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (raw_mean, sink_mean) = (mean(&raws), mean(&sinks));
        println!(
            "{}",
            serde_json::json!({
                "items": n, "concurrency": concurrency,
                "warmup_items_per_sec": warm,
                "raw_items_per_sec": raws, "raw_mean": raw_mean,
                "sink_items_per_sec": sinks, "sink_mean": sink_mean,
                "sink_startup_secs": startup,
                "ratio": sink_mean / raw_mean,
                // This process's CPU per 1,000 items: the raw writer's, and the sink's from its
                // start to its last write (with librdkafka's threads).
                "raw_cpu_ms_per_1k": raw_cpu * 1e6 / (n as f64 * raws.len() as f64),
                "sink_cpu_ms_per_1k": sink_cpu * 1e6 / (n as f64 * sinks.len() as f64),
            })
        );
    });
}
