//! The fault suite: the whole stack on loopback (`stack.rs`), steady text and voice
//! sends through the API with idempotency keys and subscribers on both hub nodes recording
//! what they get (`traffic.rs`), one fault at a time (`fault.rs`); then every
//! acknowledged message is checked against what each subscriber received and what history
//! returns (`chorus_faults::ledger`), and the table is printed. The network faults
//! (`network.rs`) impair the links of the second hub node and of the API, each in a network
//! namespace of its own.
//!
//! `CHORUS_FAULTS=long` (what `scripts/faults` sets) holds each fault as long as the issue
//! asks (DynamoDB stopped 60 s, PostgreSQL 30 s, ...); otherwise (`scripts/test`, CI) each is
//! held a few seconds. `CHORUS_FAULTS_ONLY=<text>|<text>...` runs the faults whose name has
//! one of them.
#![allow(clippy::unwrap_used)]

mod fault;
mod network;
mod soak;
mod stack;
mod traffic;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_faults::ledger::{tally, Acknowledged, History, Received, Row};
use tokio::sync::Mutex;

use chorus_testkit::pod::Way;
use fault::{Fault, Scene};
use network::Net;
use stack::Stack;
use traffic::{chat_with_member, history_of, sender, watch, Kind};

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

/// The connection storm opens a thousand sockets from this process: its soft open-files
/// limit goes up to the hard one.
fn raise_own_open_files_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap()
        .to_owned();
    let ok = std::process::Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string()])
        .arg(format!("--nofile={hard}:{hard}"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "prlimit could not raise this process's open-files limit"
    );
}

/// One fault under traffic: a chat of its own, its subscribers (one on each hub node), steady
/// text and voice sends; the fault a third of the way in; then everything acknowledged is
/// accounted for.
async fn run_fault(stack: &mut Stack, fault: &Fault, n: usize) -> Row {
    let api = stack.api.clone();
    let (ann, bob, chat) = chat_with_member(&api, &n.to_string()).await;
    let (_, carol) = api.user(&format!("carol{n}")).await;
    let channel = format!("chat:{chat}");

    let stop = Arc::new(AtomicBool::new(false));
    let stop_subscribers = Arc::new(AtomicBool::new(false));
    // Both subscribed before the first send.
    let (seen, subscribers) =
        watch(&stack.hub_urls(), &api, &bob, &channel, &stop_subscribers).await;
    let acked: Arc<Mutex<Acknowledged>> = Arc::default();
    let answers: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let clip = Arc::new(stack.clip.clone());
    let senders: Vec<_> = [(Kind::Text, "t"), (Kind::Voice, "v")]
        .into_iter()
        .map(|(kind, tag)| {
            tokio::spawn(sender(
                api.clone(),
                chat.clone(),
                ann.clone(),
                kind,
                clip.clone(),
                format!("f{n}{tag}"),
                stop.clone(),
                acked.clone(),
                answers.clone(),
            ))
        })
        .collect();
    let steady = Duration::from_secs(if long() { 20 } else { 3 });
    tokio::time::sleep(steady).await;
    let scene = Scene {
        chat: chat.clone(),
        member: bob.clone(),
        outsider: carol,
    };
    let notes = fault.run(stack, &scene, &answers).await;
    let healed = Instant::now();
    tokio::time::sleep(steady).await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().await.clone();

    // Until every acknowledged message (and transcript) reached both subscribers and
    // history, bounded.
    let mut recovered_at = None;
    let mut history = History::default();
    let deadline = Instant::now() + Duration::from_secs(if long() { 180 } else { 90 });
    while Instant::now() < deadline {
        history = history_of(&api, &chat, &bob).await.unwrap_or_default();
        let received = with_reloads(&seen, &history).await;
        let row = tally("", &acked, &received, &history, None);
        if row.lost.is_empty() {
            recovered_at = Some(healed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A little longer, for a duplicate still on its way to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_subscribers.store(true, Ordering::Relaxed);
    for s in subscribers {
        s.await.unwrap();
    }
    if let Some(h) = history_of(&api, &chat, &bob).await {
        history = h;
    }
    let received = with_reloads(&seen, &history).await;
    let mut row = tally(fault.name(), &acked, &received, &history, recovered_at);
    let answers = answers.lock().await;
    let refusals: Vec<String> = answers.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
    row.notes = [notes, format!("sends answered: {}", refusals.join(", "))]
        .into_iter()
        .filter(|s| !s.is_empty() && !s.ends_with(": "))
        .collect::<Vec<_>>()
        .join("; ");
    assert!(
        !answers.contains_key("500"),
        "{}: a send failed with 500: {answers:?}",
        fault.name()
    );
    row
}

/// After a loss, the logs of the processes that carry messages, beside the table (or in the
/// temporary directory): the processes and their temporary files go with the run.
fn keep_logs(stack: &Stack, row: &Row) {
    // Beside the fault table, or in the soak's output folder, else in the temp dir.
    let dir = std::env::var("CHORUS_FAULTS_TABLE")
        .ok()
        .and_then(|t| Some(std::path::Path::new(&t).parent()?.to_owned()))
        .or_else(|| std::env::var("CHORUS_SOAK_OUT").ok().map(Into::into))
        .unwrap_or_else(std::env::temp_dir)
        .join(row.fault.replace(|c: char| !c.is_ascii_alphanumeric(), "-"));
    std::fs::create_dir_all(&dir).unwrap();
    let logs = [
        ("tansu.log", stack.tansu.log_text()),
        ("hub-a.log", stack.hubs[0].log_text()),
        ("hub-b.log", stack.hubs[1].log_text()),
        ("api.log", stack.api_process.log_text()),
        ("sink.log", stack.sink.log_text()),
        ("transcriber.log", stack.transcriber.log_text()),
    ];
    for (name, text) in logs {
        std::fs::write(dir.join(name), text).unwrap();
    }
    eprintln!("logs of the lossy run kept in {}", dir.display());
}

/// What each subscriber holds, where one told it could not recover has reloaded history (as
/// an SDK's user does on `recovered: false`): those messages and transcripts count as
/// recovered.
async fn with_reloads(seen: &[Arc<Mutex<Received>>], history: &History) -> Vec<Received> {
    let mut out = Vec::new();
    for s in seen {
        let mut r = s.lock().await.clone();
        if r.unrecoverable > 0 {
            for id in &history.ids {
                if !r.live.contains(id) && !r.recovered.contains(id) {
                    r.recovered.push(id.clone());
                }
            }
            for id in &history.transcribed {
                if !r.transcribed.contains(id) {
                    r.transcribed.push(id.clone());
                }
            }
        }
        out.push(r);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the fault suite: scripts/faults runs it, and scripts/test its short version"]
async fn every_acknowledged_message_survives_each_fault() {
    raise_own_open_files_limit();
    let mut stack = Stack::start().await;
    let faults = [
        Fault::DynamoStopped,
        Fault::DynamoKilled,
        Fault::HubKilled,
        Fault::SinkKilled,
        Fault::TranscriberKilled,
        Fault::RedisStopped,
        Fault::RedisKilled,
        Fault::PostgresStopped,
        Fault::ApiKilled,
        Fault::ApiCrashAt("send.after_commit"),
        Fault::ApiCrashAt("send.after_ack"),
        Fault::ApiCrashAt("relay.after_publish"),
        Fault::SlowConsumer,
        Fault::ConnectionStorm,
        Fault::DiskFull,
        Fault::KafkaKilled,
        Fault::Network(Net::HubFromRedis(Way::Both)),
        Fault::Network(Net::HubFromRedis(Way::In)),
        Fault::Network(Net::HubFromKafka),
        Fault::Network(Net::ApiFromKafka),
        Fault::Network(Net::HubFromProxies),
        Fault::Network(Net::ClientsLossyAndSlow),
        Fault::Network(Net::RedisSlow),
    ];
    let only = std::env::var("CHORUS_FAULTS_ONLY").unwrap_or_default();
    let mut rows = Vec::new();
    for (n, fault) in faults.iter().enumerate() {
        if !only.split('|').any(|o| fault.name().contains(o)) {
            continue;
        }
        let row = run_fault(&mut stack, fault, n).await;
        if !row.lost.is_empty() {
            keep_logs(&stack, &row);
        }
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
            r.acknowledged > 0 && r.voice > 0,
            "{}: no text or no voice message was acknowledged, nothing was tested",
            r.fault
        );
        assert!(
            r.lost.is_empty() && r.duplicated.is_empty() && r.orphans.is_empty(),
            "{table}"
        );
    }
}

/// `scripts/soak` runs it for 30 minutes, `scripts/test` for 90 s (`CHORUS_SOAK_SECS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "the soak: scripts/soak runs it, and scripts/test its short version"]
async fn memory_is_flat_and_nothing_is_lost_under_mixed_traffic() {
    let mut stack = Stack::start().await;
    soak::soak(&mut stack).await;
}
