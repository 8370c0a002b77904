//! The fault suite: the whole stack on loopback (two hub nodes over Redis, the API, the sink,
//! tansu, DynamoDB Local, PostgreSQL), steady sends through the API with idempotency keys,
//! subscribers on both hub nodes recording what they get, one fault at a time; then every
//! acknowledged message is checked against what each subscriber received and what history
//! returns (`chorus_faults::ledger`), and the table is printed.
//!
//! `CHORUS_FAULTS=long` (what `scripts/faults` sets) holds each fault as long as the issue
//! asks (DynamoDB stopped 60 s, ...); otherwise each is held a few seconds.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_faults::ledger::{tally, Received, Row};
use chorus_testkit::api::ApiClient;
use chorus_testkit::dynamodb::DynamoLocal;
use chorus_testkit::free_port;
use chorus_testkit::hub::HubProcess;
use chorus_testkit::postgres::ScratchDb;
use chorus_testkit::process::{service_bin, ServiceProcess};
use chorus_testkit::redis::RedisServer;
use chorus_testkit::tansu::{unique, Tansu};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

const HUB_SECRET: &str = "a-hub-secret-of-at-least-32-bytes!!";
const HUB_API_KEY: &str = "hub-api-key";
const PROXY_KEY: &str = "proxy-key";

fn debug() -> bool {
    std::env::var_os("CHORUS_FAULTS_DEBUG").is_some()
}

fn long() -> bool {
    std::env::var("CHORUS_FAULTS").is_ok_and(|v| v == "long")
}

/// How long a fault is held: the figure in the long run, a few seconds in CI.
fn held(long_secs: u64) -> Duration {
    Duration::from_secs(if long() { long_secs } else { long_secs.min(4) })
}

struct Stack {
    redis: RedisServer,
    tansu: Tansu,
    dynamo: DynamoLocal,
    hubs: Vec<HubProcess>,
    api_process: ServiceProcess,
    /// How the API was started, to start it again with a crash point.
    api_env: Vec<(String, String)>,
    api_port: u16,
    sink: ServiceProcess,
    api: ApiClient,
    _db: ScratchDb,
    media: std::path::PathBuf,
}

impl Stack {
    async fn start() -> Stack {
        let redis = RedisServer::start().await;
        let tansu = Tansu::start().await;
        let dynamo = DynamoLocal::start().await;
        let (messages, state, audio, images, table) = (
            unique("chat-events"),
            unique("chat-state"),
            unique("chat-audio"),
            unique("chat-images"),
            unique("messages"),
        );
        tansu.create_topic(&messages, 3).await;
        for t in [&state, &audio, &images] {
            tansu.create_topic(t, 1).await;
        }
        let db = ScratchDb::create("faults");

        let api_port = free_port();
        let api_url = format!("http://127.0.0.1:{api_port}");
        let hub_config = |group: String| {
            json!({
                "engine": {"type": "redis", "redis": {"address": redis.url()}},
                "client": {"token": {"hmac_secret_key": HUB_SECRET}},
                "http_api": {"key": HUB_API_KEY},
                "channel": {
                    "proxy": {"subscribe": {"endpoint": format!("{api_url}/hub/subscribe"),
                              "timeout": "2s",
                              "static_http_headers": {"X-Chorus-Proxy-Key": PROXY_KEY}}},
                    "namespaces": [{"name": "chat", "history_size": 1000, "history_ttl": "600s",
                                    "force_recovery": true, "subscribe_proxy_enabled": true,
                                    "allow_history_for_subscriber": true}]},
                "consumers": [{"enabled": true, "name": "chats", "type": "kafka", "kafka": {
                    "brokers": [tansu.brokers()], "topics": [messages.clone()],
                    "consumer_group": group, "chat_event_mode": {"enabled": true}}}]
            })
        };
        let hubs = vec![
            HubProcess::with_config(&hub_config(unique("hub-a"))).await,
            HubProcess::with_config(&hub_config(unique("hub-b"))).await,
        ];
        let media = std::env::temp_dir().join(unique("chorus-faults-media"));
        let env: Vec<(String, String)> = [
            ("ADDRESS", format!("127.0.0.1:{api_port}")),
            ("DATABASE_URL", db.url()),
            ("JWT_SECRET", "a-jwt-secret-of-at-least-32-bytes!!!".into()),
            ("REDIS__URL", redis.url()),
            ("KAFKA__BROKERS", tansu.brokers()),
            ("KAFKA__MESSAGES_TOPIC", messages.clone()),
            ("KAFKA__STATE_TOPIC", state),
            ("KAFKA__AUDIO_TOPIC", audio),
            ("KAFKA__IMAGE_TOPIC", images),
            ("KAFKA__STATE_GROUP", unique("api-state")),
            ("DYNAMODB__ENDPOINT", dynamo.endpoint()),
            ("DYNAMODB__TABLE", table.clone()),
            ("HUB__API_URL", format!("{}/api", hubs[0].http())),
            ("HUB__API_KEY", HUB_API_KEY.into()),
            ("HUB__TOKEN_HMAC_SECRET", HUB_SECRET.into()),
            ("HUB__PROXY_KEY", PROXY_KEY.into()),
            ("OUTBOX__POLL_MS", "100".into()),
            ("LIMITS__SEND_PER_SECOND", "1000".into()),
            ("LIMITS__SEND_BURST", "1000".into()),
            ("LIMITS__REGISTER_PER_MINUTE", "1000".into()),
            ("LIMITS__LOGIN_PER_MINUTE", "1000".into()),
            ("MEDIA__PATH", media.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("CHORUS_API__{k}"), v))
        .collect();
        let api_process = ServiceProcess::spawn_with(
            &service_bin("chorus-api"),
            &["serve"],
            env.clone(),
            api_port,
        )
        .await;
        let sink = ServiceProcess::start(
            &service_bin("chorus-sink"),
            &[],
            "CHORUS_SINK__",
            &[
                ("KAFKA__BROKERS", tansu.brokers()),
                ("KAFKA__TOPIC", messages),
                ("KAFKA__GROUP", unique("sink")),
                // As the chart runs it: a restart takes its partitions back at once.
                ("KAFKA__INSTANCE_ID", unique("sink-0")),
                ("DYNAMODB__ENDPOINT", dynamo.endpoint()),
                ("DYNAMODB__TABLE", table),
                ("BATCH__FLUSH_INTERVAL_MS", "20".to_owned()),
            ],
        )
        .await;
        Stack {
            redis,
            tansu,
            dynamo,
            hubs,
            api_process,
            api_env: env,
            api_port,
            sink,
            api: ApiClient::new(api_url),
            _db: db,
            media,
        }
    }

    fn hub_urls(&self) -> Vec<String> {
        self.hubs.iter().map(HubProcess::url).collect()
    }
}

/// Every message id history lists for the chat, following its cursor.
async fn history_of(api: &ApiClient, chat: &str, token: &str) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/chats/{chat}/messages?limit=100&before={c}"),
            None => format!("/chats/{chat}/messages?limit=100"),
        };
        let (s, page) = api.try_call("GET", &q, Some(token), None, None).await?;
        if s != 200 {
            return None;
        }
        for m in page["messages"].as_array()? {
            ids.push(m["message_id"].as_str()?.to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Some(ids),
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.media);
    }
}

/// A subscriber as an SDK behaves: on any close it reconnects (to the other node after a
/// failure) and resubscribes with recovery from the last offset it holds.
async fn subscriber(
    urls: Vec<String>,
    first: usize,
    api: ApiClient,
    token: String,
    channel: String,
    seen: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
) {
    let mut node = first;
    let mut position: Option<(u64, String)> = None;
    while !stop.load(Ordering::Relaxed) {
        let _ = session(
            &urls[node % urls.len()],
            &api,
            &token,
            &channel,
            &seen,
            &stop,
            &mut position,
        )
        .await;
        node += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One connection's life; returns when it closes.
async fn session(
    url: &str,
    api: &ApiClient,
    token: &str,
    channel: &str,
    seen: &Mutex<Received>,
    stop: &AtomicBool,
    position: &mut Option<(u64, String)>,
) -> Option<()> {
    let (s, b) = api
        .try_call("POST", "/hub/connection-token", Some(token), None, None)
        .await?;
    if s != 200 {
        return None;
    }
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .ok()?
    .ok()?;
    ws.send(Message::text(
        json!({"id": 1, "connect": {"token": b["token"]}}).to_string(),
    ))
    .await
    .ok()?;
    let mut sub = json!({"channel": channel});
    if let Some((offset, epoch)) = position.as_ref() {
        sub["recover"] = json!(true);
        sub["offset"] = json!(offset);
        sub["epoch"] = json!(epoch);
    }
    ws.send(Message::text(
        json!({"id": 2, "subscribe": sub}).to_string(),
    ))
    .await
    .ok()?;
    while !stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(m))) => m,
            other => {
                if debug() {
                    eprintln!("[{url}] closed: {other:?}");
                }
                return None;
            }
        };
        if let (Message::Close(f), true) = (&msg, debug()) {
            eprintln!("[{url}] close frame: {f:?}");
        }
        let Message::Text(text) = msg else {
            if let Message::Close(_) = msg {
                return None;
            }
            continue;
        };
        for line in text.as_str().split('\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_str(line).ok()?;
            if v.as_object().is_some_and(|m| m.is_empty()) {
                ws.send(Message::text("{}")).await.ok()?; // pong
                continue;
            }
            if v["id"] == 2 {
                let r = &v["subscribe"];
                if debug() {
                    eprintln!("[{url}] subscribe reply: recovered={} epoch={} offset={} publications={} error={}", r["recovered"], r["epoch"], r["offset"], r["publications"].as_array().map_or(0, Vec::len), v["error"]);
                }
                if r.is_null() {
                    return None; // refused (e.g. the proxy's temporary error): reconnect
                }
                let epoch = r["epoch"].as_str().unwrap_or_default().to_owned();
                let mut top = r["offset"].as_u64().unwrap_or(0);
                let mut s = seen.lock().await;
                // The protocol leaves `recovered: false` out, as it does every false flag.
                if position.is_some() && r["recovered"] != true {
                    s.unrecoverable += 1;
                }
                for p in r["publications"].as_array().into_iter().flatten() {
                    if let Some(id) = message_id(&p["data"]) {
                        s.recovered.push(id);
                    }
                    top = top.max(p["offset"].as_u64().unwrap_or(0));
                }
                *position = Some((top, epoch));
            } else if let Some(p) = v["push"].get("pub") {
                if let Some(id) = message_id(&p["data"]) {
                    seen.lock().await.live.push(id);
                }
                if let (Some(o), Some((_, epoch))) = (p["offset"].as_u64(), position.as_ref()) {
                    *position = Some((o, epoch.clone()));
                }
            }
        }
    }
    Some(())
}

fn message_id(event: &Value) -> Option<String> {
    (event["type"] == "message.created")
        .then(|| event["data"]["message_id"].as_str().map(str::to_owned))?
}

/// What a fault does to the stack, and how it heals.
enum Fault {
    DynamoStopped,
    HubKilled,
    SinkKilled,
    KafkaKilled,
    RedisStopped,
    RedisKilled,
    ApiKilled,
    /// The API aborting at a named step of a send (`debug.crash_at`): after the database
    /// commit and before the produce, or after Kafka's ack and before the outbox row is
    /// cleared and the client answered. Restarted at once; the client retries with its key.
    ApiCrashAt(&'static str),
}

impl Fault {
    fn name(&self) -> &'static str {
        match self {
            Fault::DynamoStopped => "DynamoDB Local stopped (SIGSTOP)",
            Fault::HubKilled => "a hub node kill -9 under load",
            Fault::SinkKilled => "the sink kill -9, restarted at once",
            Fault::KafkaKilled => "the Kafka broker killed and restarted",
            Fault::RedisStopped => "Redis unreachable but alive (SIGSTOP)",
            Fault::RedisKilled => "Redis killed and restarted empty",
            Fault::ApiKilled => "the API kill -9, restarted at once",
            Fault::ApiCrashAt("send.after_commit") => {
                "the API crashing between the database commit and the produce"
            }
            Fault::ApiCrashAt("send.after_ack") => {
                "the API crashing between Kafka's ack and the database commit"
            }
            Fault::ApiCrashAt(_) => "the API crashing at a crash point",
        }
    }

    /// Injects the fault, holds it, heals it.
    async fn run(&self, stack: &mut Stack) {
        match self {
            Fault::DynamoStopped => {
                stack.dynamo.pause();
                tokio::time::sleep(held(60)).await;
                stack.dynamo.resume();
            }
            Fault::HubKilled => {
                stack.hubs[0].kill();
                tokio::time::sleep(held(10)).await;
                stack.hubs[0].restart().await;
            }
            Fault::SinkKilled => {
                stack.sink.restart().await;
            }
            Fault::KafkaKilled => {
                stack.tansu.stop();
                tokio::time::sleep(held(20)).await;
                stack.tansu.restart().await;
            }
            Fault::RedisStopped => {
                stack.redis.pause();
                tokio::time::sleep(held(20)).await;
                stack.redis.resume();
            }
            Fault::RedisKilled => {
                stack.redis.restart().await;
            }
            Fault::ApiKilled => {
                stack.api_process.restart().await;
            }
            Fault::ApiCrashAt(step) => {
                let bin = service_bin("chorus-api");
                stack.api_process.kill9();
                let mut env = stack.api_env.clone();
                env.push(("CHORUS_API__DEBUG__CRASH_AT".into(), (*step).into()));
                let crashing =
                    ServiceProcess::spawn_with(&bin, &["serve"], env, stack.api_port).await;
                // The sender's next send reaches the step and the process aborts there.
                let mut crashed = false;
                for _ in 0..200 {
                    if crashing.log_text().contains("aborting here") {
                        crashed = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert!(
                    crashed,
                    "the API never reached {step}:\n{}",
                    crashing.log_text()
                );
                drop(crashing);
                stack.api_process = ServiceProcess::spawn_with(
                    &bin,
                    &["serve"],
                    stack.api_env.clone(),
                    stack.api_port,
                )
                .await;
            }
        }
    }
}

/// Steady sends, each retried with its idempotency key until acknowledged.
async fn sender(
    api: ApiClient,
    chat: String,
    token: String,
    prefix: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{prefix}-{n}");
        n += 1;
        // Until acknowledged, or given up once the run stops (then it is not acknowledged).
        loop {
            let r = api
                .try_call(
                    "POST",
                    &format!("/chats/{chat}/messages"),
                    Some(&token),
                    Some(json!({"text": key})),
                    Some(&key),
                )
                .await;
            match r {
                Some((201 | 202, b)) => {
                    acked
                        .lock()
                        .await
                        .push(b["message_id"].as_str().unwrap().to_owned());
                    break;
                }
                _ if stop.load(Ordering::Relaxed) => break,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One fault under traffic: a chat of its own, its subscribers (one on each hub node), steady
/// sends; the fault a third of the way in; then everything acknowledged is accounted for.
async fn run_fault(stack: &mut Stack, fault: &Fault, n: usize) -> Row {
    let api = stack.api.clone();
    let (_, ann) = api.user(&format!("ann{n}")).await;
    let (bob_id, bob) = api.user(&format!("bob{n}")).await;
    let (s, chat) = api
        .try_call(
            "POST",
            "/chats",
            Some(&ann),
            Some(json!({"title": format!("fault {n}")})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{chat}");
    let chat = chat["id"].as_str().unwrap().to_owned();
    let (s, b) = api
        .try_call(
            "POST",
            &format!("/chats/{chat}/members"),
            Some(&ann),
            Some(json!({"user_id": bob_id})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 201, "{b}");
    let channel = format!("chat:{chat}");

    let stop = Arc::new(AtomicBool::new(false));
    let stop_subscribers = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Received>>> = (0..2).map(|_| Arc::default()).collect();
    let mut subscribers = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        subscribers.push(tokio::spawn(subscriber(
            stack.hub_urls(),
            i,
            api.clone(),
            bob.clone(),
            channel.clone(),
            s.clone(),
            stop_subscribers.clone(),
        )));
    }
    // Both subscribed before the first send.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let sending = tokio::spawn(sender(
        api.clone(),
        chat.clone(),
        ann.clone(),
        format!("f{n}"),
        stop.clone(),
        acked.clone(),
    ));
    let steady = Duration::from_secs(if long() { 20 } else { 3 });
    tokio::time::sleep(steady).await;
    fault.run(stack).await;
    let healed = Instant::now();
    tokio::time::sleep(steady).await;
    stop.store(true, Ordering::Relaxed);
    sending.await.unwrap();
    let acked = acked.lock().await.clone();

    // Until every acknowledged message reached both subscribers and history, bounded.
    let mut recovered_at = None;
    let mut history = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(if long() { 180 } else { 60 });
    while Instant::now() < deadline {
        history = history_of(&api, &chat, &bob).await.unwrap_or_default();
        let mut done = acked.iter().all(|id| history.contains(id));
        for s in &seen {
            let s = s.lock().await;
            // Told it could not recover, the client reloads history (see below).
            let reloaded = |id: &String| s.unrecoverable > 0 && history.contains(id);
            done &= acked
                .iter()
                .all(|id| s.live.contains(id) || s.recovered.contains(id) || reloaded(id));
        }
        if done {
            recovered_at = Some(healed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop_subscribers.store(true, Ordering::Relaxed);
    for s in subscribers {
        s.await.unwrap();
    }
    let mut received = Vec::new();
    for s in &seen {
        let mut r = s.lock().await.clone();
        if r.unrecoverable > 0 {
            // Told it could not recover, an SDK's user reloads history: what it holds now.
            for id in &history {
                if !r.live.contains(id) && !r.recovered.contains(id) {
                    r.recovered.push(id.clone());
                }
            }
        }
        received.push(r);
    }
    tally(fault.name(), &acked, &received, &history, recovered_at)
}

// Not in CI yet: after the Kafka broker restarts, tansu sometimes leaves the consumers
// without records (docs/reliability.md); `scripts/faults` runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the fault suite: scripts/faults runs it"]
async fn every_acknowledged_message_survives_each_fault() {
    let mut stack = Stack::start().await;
    let faults = [
        Fault::DynamoStopped,
        Fault::HubKilled,
        Fault::SinkKilled,
        Fault::RedisStopped,
        Fault::RedisKilled,
        Fault::ApiKilled,
        Fault::ApiCrashAt("send.after_commit"),
        Fault::ApiCrashAt("send.after_ack"),
        // Last: tansu 0.6 sometimes comes back from a kill unable to serve consumer groups
        // (docs/reliability.md), which would spoil every fault after it.
        Fault::KafkaKilled,
    ];
    let only = std::env::var("CHORUS_FAULTS_ONLY").unwrap_or_default();
    let mut rows = Vec::new();
    for (n, fault) in faults.iter().enumerate() {
        if !fault.name().contains(only.as_str()) {
            continue;
        }
        let row = run_fault(&mut stack, fault, n).await;
        eprintln!(
            "{}",
            chorus_faults::report::table(std::slice::from_ref(&row))
        );
        rows.push(row);
    }
    let table = chorus_faults::report::table(&rows);
    println!("{table}");
    if let Ok(path) = std::env::var("CHORUS_FAULTS_TABLE") {
        std::fs::write(path, &table).unwrap();
    }
    for r in &rows {
        assert!(
            r.acknowledged > 0,
            "{}: nothing was acknowledged, nothing was tested",
            r.fault
        );
        assert!(r.lost.is_empty() && r.duplicated.is_empty(), "{table}");
    }
}
