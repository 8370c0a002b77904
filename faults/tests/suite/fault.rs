//! The faults, each injected, held and healed; what a fault checks beyond the ledger (close
//! codes, memory, refusals) it asserts itself and returns in words for the table.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chorus_testkit::api::ApiClient;
use chorus_testkit::process::ServiceProcess;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::network::Net;
use crate::stack::{Stack, HUB_API_KEY};
use crate::traffic::{open, Ws};
use crate::{held, long};

/// What a fault needs of the traffic it runs under.
pub struct Scene {
    pub chat: String,
    /// A member's access token (the subscribers' user).
    pub member: String,
    /// A user who is not a member of the chat.
    pub outsider: String,
}

/// What a fault does to the stack, and how it heals.
pub enum Fault {
    DynamoStopped,
    DynamoKilled,
    HubKilled,
    SinkKilled,
    TranscriberKilled,
    RedisStopped,
    RedisKilled,
    PostgresStopped,
    ApiKilled,
    /// The API aborting at a named step (`debug.crash_at`): a send after the database commit
    /// and before the produce, or after Kafka's ack and before the outbox row is cleared and
    /// the client answered; the outbox relay after the broker's ack and before deleting its
    /// rows. Restarted at once; the client retries with its key.
    ApiCrashAt(&'static str),
    SlowConsumer,
    ConnectionStorm,
    DiskFull,
    KafkaKilled,
    /// A link cut, lossy or slow (`network.rs`).
    Network(Net),
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::DynamoStopped => "DynamoDB Local stopped (SIGSTOP)",
            Fault::DynamoKilled => "DynamoDB Local kill -9, restarted at once",
            Fault::HubKilled => "a hub node kill -9 under load",
            Fault::SinkKilled => "the sink kill -9, restarted at once",
            Fault::TranscriberKilled => "the transcriber kill -9 mid-transcription, restarted",
            Fault::RedisStopped => "Redis unreachable but alive (SIGSTOP)",
            Fault::RedisKilled => "Redis killed and restarted empty",
            Fault::PostgresStopped => "PostgreSQL stopped, then started",
            Fault::ApiKilled => "the API kill -9, restarted at once",
            Fault::ApiCrashAt("send.after_commit") => {
                "the API crashing between the database commit and the produce"
            }
            Fault::ApiCrashAt("send.after_ack") => {
                "the API crashing between Kafka's ack and the outbox row's delete"
            }
            Fault::ApiCrashAt("relay.after_publish") => {
                "the outbox relay crashing between Kafka's ack and deleting its rows"
            }
            Fault::ApiCrashAt(_) => "the API crashing at a crash point",
            Fault::SlowConsumer => "a slow WebSocket consumer",
            Fault::ConnectionStorm => "a connection storm past the open-files budget",
            Fault::DiskFull => "the media store's disk full",
            Fault::KafkaKilled => "the Kafka broker killed and restarted",
            Fault::Network(net) => net.name(),
        }
    }

    /// Injects the fault, holds it, heals it; returns what it checked, in words.
    pub async fn run(
        &self,
        stack: &mut Stack,
        scene: &Scene,
        answers: &tokio::sync::Mutex<BTreeMap<String, usize>>,
    ) -> String {
        match self {
            Fault::DynamoStopped => {
                stack.dynamo.pause();
                tokio::time::sleep(held(60)).await;
                stack.dynamo.resume();
                String::new()
            }
            Fault::DynamoKilled => {
                stack.dynamo.restart().await;
                String::new()
            }
            Fault::HubKilled => {
                stack.hubs[0].kill();
                tokio::time::sleep(held(10)).await;
                stack.hubs[0].restart().await;
                String::new()
            }
            Fault::SinkKilled => {
                stack.sink.restart().await;
                String::new()
            }
            Fault::TranscriberKilled => transcriber_killed(&mut stack.transcriber).await,
            Fault::RedisStopped => {
                stack.redis.pause();
                tokio::time::sleep(held(20)).await;
                stack.redis.resume();
                String::new()
            }
            Fault::RedisKilled => {
                stack.redis.restart().await;
                String::new()
            }
            Fault::PostgresStopped => postgres_stopped(stack, scene, answers).await,
            Fault::ApiKilled => {
                stack.api_process.restart().await;
                String::new()
            }
            Fault::ApiCrashAt(step) => {
                stack.api_process.kill9();
                let crashing = stack.start_api(Some(step)).await;
                // The senders' next send (or the relay's next round) reaches the step.
                let deadline = Instant::now() + Duration::from_secs(60);
                while !crashing.log_text().contains("aborting here") {
                    assert!(
                        Instant::now() < deadline,
                        "the API never reached {step}:\n{}",
                        crashing.log_text()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                drop(crashing);
                stack.api_process = stack.start_api(None).await;
                format!("aborted at `{step}`")
            }
            Fault::SlowConsumer => slow_consumer(stack, scene).await,
            Fault::ConnectionStorm => connection_storm(stack).await,
            Fault::DiskFull => {
                let before = answers.lock().await.get("507").copied().unwrap_or(0);
                stack.media.fill();
                tokio::time::sleep(held(20)).await;
                stack.media.free();
                let refused = answers.lock().await.get("507").copied().unwrap_or(0) - before;
                assert!(
                    refused > 0,
                    "no voice upload was refused with 507 while the disk was full"
                );
                format!("{refused} voice uploads refused 507 while full")
            }
            Fault::KafkaKilled => {
                stack.tansu.stop();
                tokio::time::sleep(held(20)).await;
                stack.tansu.restart().await;
                String::new()
            }
            Fault::Network(net) => net.run(stack, scene, answers).await,
        }
    }
}

/// Waits until the transcriber is inside a job (started, not yet done: Whisper running),
/// kills it there, starts it again at once.
async fn transcriber_killed(worker: &mut ServiceProcess) -> String {
    // Inside a job: a job started since the fault began, and the log's last word on jobs
    // is "transcribing" (a restart appends to the same log).
    let state = |w: &ServiceProcess| {
        let log = w.log_text();
        let started = log.matches(" transcribing ").count();
        let last = log
            .lines()
            .rev()
            .find(|l| l.contains(" transcribing ") || l.contains(" transcribed "))
            .is_some_and(|l| l.contains(" transcribing "));
        (started, last)
    };
    let (before, _) = state(worker);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (started, in_job) = state(worker);
        if started > before && in_job {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no transcription started in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.restart().await;
    "killed inside a transcription".into()
}

/// PostgreSQL down: sends must be refused with 503 (no 500, nothing half-written, which the
/// ledger checks), and a user who is not a member must never be let into the chat by the
/// subscribe proxy while it cannot ask the database.
async fn postgres_stopped(
    stack: &mut Stack,
    scene: &Scene,
    answers: &tokio::sync::Mutex<BTreeMap<String, usize>>,
) -> String {
    let hub = stack.hub_urls()[0].clone();
    // The outsider's connection token is taken while the API can still sign it.
    let token = connection_token(&stack.api, &scene.outsider).await;
    let channel = format!("chat:{}", scene.chat);
    let before = answers.lock().await.clone();
    stack.postgres.stop();
    let until = Instant::now() + held(30);
    let (mut tries, mut granted) = (0, 0);
    while Instant::now() < until {
        if let Some(reply) = try_subscribe(&hub, &token, &channel).await {
            tries += 1;
            if reply.get("error").is_none() {
                granted += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stack.postgres.restart().await;
    let after = answers.lock().await.clone();
    let grew = |code: &str| after.get(code).unwrap_or(&0) - before.get(code).unwrap_or(&0);
    assert_eq!(
        granted, 0,
        "the proxy let an outsider in while PostgreSQL was down"
    );
    assert!(tries > 0, "no subscribe attempt got an answer from the hub");
    assert_eq!(grew("500"), 0, "a send failed with 500 instead of 503");
    assert!(
        grew("503") > 0,
        "no send was refused with 503 while PostgreSQL was down"
    );
    format!(
        "sends refused 503 ×{}; an outsider's {tries} subscribes, 0 granted",
        grew("503")
    )
}

pub async fn connection_token(api: &ApiClient, user: &str) -> String {
    let (s, b) = api
        .call("POST", "/hub/connection-token", Some(user), None)
        .await;
    assert_eq!(s, 200, "{b}");
    b["token"].as_str().unwrap().to_owned()
}

/// A connected client (the connect reply read).
async fn connected(url: &str, token: &str) -> Option<Ws> {
    let mut ws = open(url, token).await?;
    reply(&mut ws, 1).await?;
    Some(ws)
}

/// The reply to command `id`, skipping pushes; `None` if the connection ends first.
async fn reply(ws: &mut Ws, id: u64) -> Option<Value> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .ok()??
            .ok()?;
        let Message::Text(t) = m else { continue };
        for line in t.as_str().split('\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_str(line).ok()?;
            if v["id"] == id {
                return Some(v);
            }
        }
    }
}

/// One subscribe on a fresh connection: the hub's reply, or `None` when there was none.
pub async fn try_subscribe(url: &str, token: &str, channel: &str) -> Option<Value> {
    let mut ws = connected(url, token).await?;
    ws.send(Message::text(
        json!({"id": 2, "subscribe": {"channel": channel}}).to_string(),
    ))
    .await
    .ok()?;
    reply(&mut ws, 2).await
}

async fn hub_publish(http: &str, channel: &str, data: &Value) {
    let r = reqwest::Client::new()
        .post(format!("{http}/api/publish"))
        .header("X-API-Key", HUB_API_KEY)
        .header("content-type", "application/json")
        .body(json!({"channel": channel, "data": data}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// A client that subscribes to a firehose and stops reading: the hub must close it with 3008
/// and not hold what it could not send. The hub's resident memory is measured while the same
/// volume goes to a channel nobody reads (the baseline) and then to the slow client's.
async fn slow_consumer(stack: &mut Stack, scene: &Scene) -> String {
    const BLOB: usize = 16 * 1024;
    let count = if long() { 16_384 } else { 4096 }; // 256 MiB or 64 MiB
    let hub = &stack.hubs[0];
    let http = hub.http();
    let data = json!({"blob": "z".repeat(BLOB)});
    let publish_all = |channel: &'static str| {
        let (http, data) = (&http, &data);
        async move {
            let before = hub.resident_bytes();
            let mut peak = before;
            for n in 0..count {
                hub_publish(http, channel, data).await;
                if n % 64 == 0 {
                    peak = peak.max(hub.resident_bytes());
                }
            }
            peak.max(hub.resident_bytes()).saturating_sub(before)
        }
    };
    let closed_slow = || hub.metric("chorus_hub_disconnects_total", "code=\"3008\"");
    let slow_before = closed_slow().await;
    let baseline = publish_all("load:nobody").await;
    let token = connection_token(&stack.api, &scene.member).await;
    let mut slow = connected(&hub.url(), &token)
        .await
        .expect("the slow client connects");
    slow.send(Message::text(
        json!({"id": 2, "subscribe": {"channel": "load:firehose"}}).to_string(),
    ))
    .await
    .unwrap();
    let r = reply(&mut slow, 2).await.expect("a subscribe reply");
    assert!(r.get("error").is_none(), "{r}");
    // From here on it reads nothing.
    let grown = publish_all("load:firehose").await;
    let published = (count * BLOB) as u64;
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    assert!(
        grown < baseline + published / 4,
        "the hub grew {:.1} MiB (baseline {:.1}) while {:.0} MiB went to a client that does not read",
        mib(grown),
        mib(baseline),
        mib(published)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while closed_slow().await <= slow_before {
        assert!(
            Instant::now() < deadline,
            "the slow client was not closed as slow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its socket buffers may still hold frames; then the close frame, or the end.
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => break f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            _ => break None,
        }
    };
    assert!(
        matches!(code, Some(3008) | None),
        "the slow client was closed with {code:?}"
    );
    format!(
        "closed 3008; hub grew {:.1} MiB while {:.0} MiB went to it ({:.1} MiB with no subscriber)",
        mib(grown),
        mib(published),
        mib(baseline)
    )
}

/// How one storm socket ended within its wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Storm {
    /// Still open: the hub took it.
    Served,
    /// Closed with 3504.
    Refused,
    /// Closed before or during the handshake, without a WebSocket close code.
    Dropped,
}

/// More sockets than the second hub node's open-files budget, all at once: those past the
/// budget are refused with 3504 (or, past the socket budget, closed outright), the node stays
/// up and serving, and its subscriber keeps receiving (the ledger).
async fn connection_storm(stack: &mut Stack) -> String {
    let sockets = crate::stack::HUB_B_NOFILE as usize;
    let url = stack.hubs[1].url();
    let (end, ended) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let (url, mut ended) = (url.clone(), ended.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(Ok((mut ws, _))) = tokio::time::timeout(
                Duration::from_secs(10),
                tokio_tungstenite::connect_async(url),
            )
            .await
            else {
                return Storm::Dropped;
            };
            let outcome = match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
                Err(_) => Storm::Served,
                Ok(Some(Ok(Message::Close(Some(f))))) if f.code == CloseCode::from(3504) => {
                    Storm::Refused
                }
                Ok(_) => Storm::Dropped,
            };
            if outcome == Storm::Served {
                let _ = ended.wait_for(|e| *e).await; // open until the storm ends
            }
            outcome
        }));
    }
    drop(ended);
    tokio::time::sleep(Duration::from_secs(5)).await;
    end.send_replace(true);
    let mut outcomes: BTreeMap<Storm, usize> = BTreeMap::new();
    for t in tasks {
        *outcomes.entry(t.await.unwrap()).or_default() += 1;
    }
    let n = |s| outcomes.get(&s).copied().unwrap_or(0);
    let health = reqwest::get(format!("{}/health", stack.hubs[1].http()))
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(health.ok(), Some(200), "the hub did not stay up");
    assert!(
        n(Storm::Refused) > 0,
        "no socket was refused with 3504: {outcomes:?}"
    );
    assert!(
        n(Storm::Served) > 0,
        "the hub served none of the storm: {outcomes:?}"
    );
    format!(
        "{sockets} sockets: {} served, {} refused 3504, {} closed outright",
        n(Storm::Served),
        n(Storm::Refused),
        n(Storm::Dropped)
    )
}
