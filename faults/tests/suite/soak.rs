//! The soak: the whole stack under mixed traffic (text and voice sends in several chats, the
//! ledger's subscribers, and clients that keep connecting, subscribing and leaving on both
//! nodes) for `CHORUS_SOAK_SECS`, with the resident memory of every service sampled. After a
//! warm-up (the first third) memory must be flat, and every acknowledged message accounted for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_faults::ledger::{tally, Acknowledged};
use chorus_faults::rss::{flatness, Flatness};
use chorus_testkit::api::ApiClient;
use chorus_testkit::process::resident_bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::stack::Stack;
use crate::traffic::{chat_with_member, history_of, open, sender, watch, Kind};
use crate::with_reloads;

const CHATS: usize = 3;
/// Clients connecting, subscribing and leaving, at once.
const CHURNERS: usize = 20;

fn soak_secs() -> u64 {
    std::env::var("CHORUS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90)
}

/// A client that connects (to each node in turn), subscribes to a chat, stays a moment and
/// goes, over and over; counts its sessions.
async fn churner(
    urls: Vec<String>,
    api: ApiClient,
    token: String,
    channel: String,
    stop: Arc<AtomicBool>,
    sessions: Arc<AtomicU64>,
    n: usize,
) {
    let mut turn = n;
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        let Some((200, b)) = api
            .try_call("POST", "/hub/connection-token", Some(&token), None, None)
            .await
        else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let url = &urls[turn % urls.len()];
        if let Some(mut ws) = open(url, b["token"].as_str().unwrap_or_default()).await {
            let _ = ws
                .send(Message::text(
                    json!({"id": 2, "subscribe": {"channel": channel}}).to_string(),
                ))
                .await;
            let stay = Duration::from_millis(500 + (turn as u64 * 137) % 2500);
            let _ = tokio::time::timeout(stay, async { while ws.next().await.is_some() {} }).await;
            let _ = ws.close(None).await;
            sessions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The services whose memory is watched, by name, with a way to find each one's pid now.
fn processes(stack: &Stack) -> Vec<(&'static str, u32)> {
    vec![
        ("hub a", stack.hubs[0].pid()),
        ("hub b", stack.hubs[1].pid()),
        ("api", stack.api_process.pid()),
        ("sink", stack.sink.pid()),
        ("transcriber", stack.transcriber.pid()),
    ]
}

pub async fn soak(stack: &mut Stack) {
    let secs = soak_secs();
    let api = stack.api.clone();
    let urls = stack.hub_urls();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_subscribers = Arc::new(AtomicBool::new(false));
    let sessions = Arc::new(AtomicU64::new(0));
    let clip = Arc::new(stack.clip.clone());
    let answers = Arc::default();
    let mut chats = Vec::new();
    let mut tasks = Vec::new();
    let mut background = Vec::new();
    for c in 0..CHATS {
        let (ann, bob, chat) = chat_with_member(&api, &format!("soak{c}")).await;
        let channel = format!("chat:{chat}");
        // Both subscribed before the chat's first send.
        let (seen, subscribers) = watch(&urls, &api, &bob, &channel, &stop_subscribers).await;
        background.extend(subscribers);
        for n in 0..CHURNERS / CHATS {
            background.push(tokio::spawn(churner(
                urls.clone(),
                api.clone(),
                bob.clone(),
                channel.clone(),
                stop.clone(),
                sessions.clone(),
                n,
            )));
        }
        let acked: Arc<Mutex<Acknowledged>> = Arc::default();
        for (kind, tag) in [(Kind::Text, "t"), (Kind::Voice, "v")] {
            tasks.push(tokio::spawn(sender(
                api.clone(),
                chat.clone(),
                ann.clone(),
                kind,
                clip.clone(),
                format!("soak{c}{tag}"),
                stop.clone(),
                acked.clone(),
                Arc::clone(&answers),
            )));
        }
        chats.push((chat, bob, seen, acked));
    }

    // Sampled every 1/60 of the run (at least every second).
    let every = Duration::from_secs((secs / 60).max(1));
    let started = Instant::now();
    let names: Vec<&str> = processes(stack).iter().map(|(n, _)| *n).collect();
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); names.len()];
    let mut csv = format!("seconds,{}\n", names.join(","));
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(every).await;
        let now: Vec<u64> = processes(stack)
            .iter()
            .map(|(_, pid)| resident_bytes(*pid))
            .collect();
        csv.push_str(&format!(
            "{},{}\n",
            started.elapsed().as_secs(),
            now.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        ));
        for (s, v) in samples.iter_mut().zip(now) {
            s.push(v);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    // Everything acknowledged, everywhere; "time to recover" is from the end of the sends.
    let stopped = Instant::now();
    let mut rows = Vec::new();
    for (chat, bob, seen, acked) in &chats {
        let acked = acked.lock().await.clone();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut row = None;
        while Instant::now() < deadline {
            let history = history_of(&api, chat, bob).await.unwrap_or_default();
            let received = with_reloads(seen, &history).await;
            let r = tally("soak", &acked, &received, &history, Some(stopped.elapsed()));
            let done = r.lost.is_empty();
            row = Some(r);
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        rows.push(row.unwrap());
    }
    stop_subscribers.store(true, Ordering::Relaxed);
    for t in background {
        t.await.unwrap();
    }

    let mut report = format!(
        "soak: {secs} s, {CHATS} chats, {} churning sessions\n\n| service | after warm-up | at the end | growth | verdict |\n|---|---|---|---|---|\n",
        sessions.load(Ordering::Relaxed)
    );
    let mut growing = Vec::new();
    for (name, s) in names.iter().zip(&samples) {
        let f: Flatness = flatness(s);
        let mib = |b: f64| b / f64::from(1 << 20);
        report.push_str(&format!(
            "| {name} | {:.1} MiB | {:.1} MiB | {:+.1} MiB | {} |\n",
            mib(f.start),
            mib(f.end),
            mib(f.end - f.start),
            if f.flat { "flat" } else { "GROWING" }
        ));
        if !f.flat {
            growing.push(*name);
        }
    }
    report.push('\n');
    report.push_str(&chorus_faults::report::table(&rows));
    println!("{report}");
    if let Ok(dir) = std::env::var("CHORUS_SOAK_OUT") {
        std::fs::write(format!("{dir}/rss.csv"), &csv).unwrap();
        std::fs::write(format!("{dir}/soak.md"), &report).unwrap();
    }
    // A lossy soak keeps the processes' logs, as a lossy fault row does.
    if let Some(r) = rows
        .iter()
        .find(|r| !r.lost.is_empty() || !r.duplicated.is_empty())
    {
        crate::keep_logs(stack, r);
    }
    for r in &rows {
        assert!(
            r.acknowledged > 0 && r.voice > 0,
            "nothing was sent:\n{report}"
        );
        assert!(
            r.lost.is_empty() && r.duplicated.is_empty() && r.orphans.is_empty(),
            "{report}"
        );
    }
    // The transcriber's memory climbs in steps for its first minutes (Whisper's buffers, the
    // allocator's arenas; measured in the 30-minute soak, docs/reliability.md), longer than
    // the warm-up of a short run: memory is judged only on runs of 10 minutes or more.
    if secs >= 600 {
        assert!(
            growing.is_empty(),
            "memory grew after warm-up: {growing:?}\n{report}"
        );
    }
}
