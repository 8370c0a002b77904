//! The traffic every fault runs under: subscribers that behave as the SDKs do, senders of text
//! and voice messages that retry with their idempotency keys, and history read to the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus_faults::ledger::{Acknowledged, History, Received};
use chorus_testkit::api::ApiClient;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::debug;

/// A chat of its own for a run: its creator (who sends) and a member (whose subscribers
/// watch), users `ann<tag>` and `bob<tag>`; returns (ann's token, bob's token, chat id).
pub async fn chat_with_member(api: &ApiClient, tag: &str) -> (String, String, String) {
    let (_, ann) = api.user(&format!("ann{tag}")).await;
    let (bob_id, bob) = api.user(&format!("bob{tag}")).await;
    let (s, chat) = api
        .call("POST", "/chats", Some(&ann), Some(json!({"title": tag})))
        .await;
    assert_eq!(s, 201, "{chat}");
    let chat = chat["id"].as_str().unwrap().to_owned();
    let (s, b) = api
        .call(
            "POST",
            &format!("/chats/{chat}/members"),
            Some(&ann),
            Some(json!({"user_id": bob_id})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    (ann, bob, chat)
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to the hub with the connect command sent (its reply not read yet).
pub async fn open(url: &str, token: &str) -> Option<Ws> {
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .ok()?
    .ok()?;
    ws.send(Message::text(
        json!({"id": 1, "connect": {"token": token}}).to_string(),
    ))
    .await
    .ok()?;
    Some(ws)
}

/// Every message history lists for the chat, following its cursor; `None` while history
/// cannot be read.
pub async fn history_of(api: &ApiClient, chat: &str, token: &str) -> Option<History> {
    let mut h = History::default();
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
            let id = m["message_id"].as_str()?.to_owned();
            if m["transcript"].as_str().is_some_and(|t| !t.is_empty()) {
                h.transcribed.push(id.clone());
            }
            h.ids.push(id);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Some(h),
        }
    }
}

/// The two ledger subscribers of a chat, the first starting on node 0 and the second on
/// node 1: what each records, and their tasks (which end once `stop` is set). Returns once
/// both are subscribed: a first subscribe starts at the stream's top, as an SDK's does, so a
/// message sent before it is not this subscriber's to receive, and the ledger would count it
/// lost (the soak once did, 1 in about 5 runs on a busy machine).
pub async fn watch(
    urls: &[String],
    api: &ApiClient,
    token: &str,
    channel: &str,
    stop: &Arc<AtomicBool>,
) -> (Vec<Arc<Mutex<Received>>>, Vec<tokio::task::JoinHandle<()>>) {
    let seen: Vec<Arc<Mutex<Received>>> = (0..2).map(|_| Arc::default()).collect();
    let subscribed = Arc::new(Semaphore::new(0));
    let tasks = seen
        .iter()
        .enumerate()
        .map(|(i, s)| {
            tokio::spawn(subscriber(
                urls.to_vec(),
                i,
                api.clone(),
                token.to_owned(),
                channel.to_owned(),
                s.clone(),
                stop.clone(),
                subscribed.clone(),
            ))
        })
        .collect();
    let both = tokio::time::timeout(Duration::from_secs(60), subscribed.acquire_many(2)).await;
    assert!(
        matches!(both, Ok(Ok(_))),
        "{channel}: the ledger subscribers did not both subscribe within 60 s"
    );
    (seen, tasks)
}

/// A subscriber as an SDK behaves: on any close it reconnects (to the other node after a
/// failure) and resubscribes with recovery from the last offset it holds.
#[allow(clippy::too_many_arguments)]
pub async fn subscriber(
    urls: Vec<String>,
    first: usize,
    api: ApiClient,
    token: String,
    channel: String,
    seen: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    subscribed: Arc<Semaphore>,
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
            &subscribed,
        )
        .await;
        node += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One connection's life; returns when it closes.
#[allow(clippy::too_many_arguments)]
async fn session(
    url: &str,
    api: &ApiClient,
    token: &str,
    channel: &str,
    seen: &Mutex<Received>,
    stop: &AtomicBool,
    position: &mut Option<(u64, String)>,
    subscribed: &Semaphore,
) -> Option<()> {
    let (s, b) = api
        .try_call("POST", "/hub/connection-token", Some(token), None, None)
        .await?;
    if s != 200 {
        return None;
    }
    let mut ws = open(url, b["token"].as_str()?).await?;
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
                    record(&mut s, &p["data"], true);
                    top = top.max(p["offset"].as_u64().unwrap_or(0));
                }
                if position.is_none() {
                    // The first subscription of this subscriber: it is watching from here.
                    subscribed.add_permits(1);
                }
                *position = Some((top, epoch));
            } else if let Some(p) = v["push"].get("pub") {
                record(&mut *seen.lock().await, &p["data"], false);
                if let (Some(o), Some((_, epoch))) = (p["offset"].as_u64(), position.as_ref()) {
                    *position = Some((o, epoch.clone()));
                }
            }
        }
    }
    Some(())
}

/// Notes a chat event: a new message (live or recovered), or a transcript.
fn record(s: &mut Received, event: &Value, recovered: bool) {
    let id = event["data"]["message_id"].as_str().map(str::to_owned);
    match (event["type"].as_str(), id) {
        (Some("message.created"), Some(id)) if recovered => s.recovered.push(id),
        (Some("message.created"), Some(id)) => s.live.push(id),
        (Some("message.transcribed"), Some(id)) => s.transcribed.push(id),
        _ => {}
    }
}

/// What a sender sends.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Text,
    /// The stack's voice clip, uploaded.
    Voice,
}

/// Steady sends of one kind, each retried with its idempotency key until acknowledged: after
/// `stop` too, for the one in flight, so that nothing is left half-sent (bounded, 90 s).
/// Every answer that was not an acknowledgement is counted in `answers` by status.
#[allow(clippy::too_many_arguments)]
pub async fn sender(
    api: ApiClient,
    chat: String,
    token: String,
    kind: Kind,
    clip: Arc<Vec<u8>>,
    prefix: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acknowledged>>,
    answers: Arc<Mutex<BTreeMap<String, usize>>>,
) {
    let every = match kind {
        Kind::Text => Duration::from_millis(50),
        Kind::Voice => Duration::from_millis(2500),
    };
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{prefix}-{n}");
        n += 1;
        let mut stopped_at: Option<Instant> = None;
        loop {
            let r = match kind {
                Kind::Text => {
                    api.try_call(
                        "POST",
                        &format!("/chats/{chat}/messages"),
                        Some(&token),
                        Some(json!({"text": key})),
                        Some(&key),
                    )
                    .await
                }
                Kind::Voice => {
                    api.try_upload(&format!("/chats/{chat}/voice"), &token, &clip, Some(&key))
                        .await
                }
            };
            if let Some((201 | 202, b)) = r {
                let id = b["message_id"].as_str().unwrap().to_owned();
                let mut a = acked.lock().await;
                if kind == Kind::Voice {
                    a.voice.push(id.clone());
                }
                a.ids.push(id);
                break;
            }
            if debug() {
                eprintln!("send {key}: {r:?}");
            }
            let answer = r.map_or("no answer".to_owned(), |(s, _)| s.to_string());
            *answers.lock().await.entry(answer).or_default() += 1;
            if stop.load(Ordering::Relaxed) {
                let since = *stopped_at.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(90) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(every).await;
    }
}
