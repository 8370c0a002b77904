//! One connection: dial from a spread source address, open the WebSocket, subscribe, then
//! record every publication until the worker says stop or the server goes away.
//!
//! A connection is one task with small buffers, so a worker holds as many of them as its
//! open-file limit allows. What it learns goes into the worker's shared [`Shared`] state.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::ipc::WorkerPlan;
use crate::payload::now_micros;
use crate::stats::Stats;
use crate::track::Tracker;
use crate::wire::{Event, Wire};

type Socket = WebSocketStream<TcpStream>;

/// State shared by a worker's connections.
pub struct Shared {
    pub plan: WorkerPlan,
    pub stats: Stats,
    /// Protocol errors and unparsable messages after subscribing.
    pub garbled: AtomicU64,
    /// Bytes of the WebSocket messages received after subscribing (payloads, not framing).
    pub bytes_received: AtomicU64,
    pub trackers: Vec<Mutex<Tracker>>,
    pub stop: watch::Sender<bool>,
}

impl Shared {
    pub fn new(plan: WorkerPlan) -> Self {
        let trackers = plan.assignment.iter().map(|_| Mutex::default()).collect();
        Self {
            plan,
            stats: Stats::default(),
            garbled: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            trackers,
            stop: watch::channel(false).0,
        }
    }
}

/// Runs connection `local` of this worker to the end.
pub async fn run(shared: std::sync::Arc<Shared>, local: usize) {
    let mut stop = shared.stop.subscribe();
    let plan = &shared.plan;
    let started = Instant::now();
    let opened = timeout(
        Duration::from_millis(plan.connect_timeout_ms),
        open(plan, local),
    )
    .await;
    let (mut ws, mut wire) = match opened {
        Ok(Ok(pair)) => pair,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e,
                _ => "timeout".into(),
            };
            return shared.stats.connect_failed(why);
        }
    };
    let connect_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let tracker = &shared.trackers[local];
    tracker.lock().subscribed = true;
    // Counted only now, so a connection reported connected is always owed its deliveries.
    shared.stats.connected(connect_us);
    let (mut events, mut replies) = (Vec::new(), Vec::new());
    loop {
        let msg = tokio::select! {
            _ = stop.changed() => {
                let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
                return;
            }
            msg = ws.next() => msg,
        };
        let msg = match msg {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => m,
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map_or("none".to_string(), |f| u16::from(f.code).to_string());
                return shared.stats.disconnected(code);
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return shared.stats.disconnected(error_kind(&e)),
            None => return shared.stats.disconnected("reset".into()),
        };
        shared
            .bytes_received
            .fetch_add(msg.len() as u64, Ordering::Relaxed);
        wire.on_message(&msg, &mut events, &mut replies);
        for event in events.drain(..) {
            match event {
                Event::Publication(p) => {
                    let now = now_micros();
                    if tracker.lock().record(p.s) {
                        shared.stats.delivered(p.t, now);
                    }
                }
                Event::Subscribed => {}
                Event::Refused(_) | Event::Garbled(_) => {
                    shared.garbled.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for reply in replies.drain(..) {
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    }
}

/// Dials, upgrades and subscribes; the error is a short kind for the report.
async fn open(plan: &WorkerPlan, local: usize) -> Result<(Socket, Wire), String> {
    let global = plan.first_conn + local;
    let base = &plan.urls[global % plan.urls.len()];
    let url = Wire::url(plan.protocol, base, plan.pusher_key.as_deref());
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad url: {e}"))?;
    if let Some(sub) = Wire::subprotocol(plan.protocol) {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            tokio_tungstenite::tungstenite::http::HeaderValue::from_static(sub),
        );
    }
    let host = request.uri().host().unwrap_or("127.0.0.1").to_string();
    let port = request.uri().port_u16().unwrap_or(80);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("resolve: {e}"))?
        .next()
        .ok_or("resolve: no address")?;
    let tcp = dial(addr, global, plan.source_ips)
        .await
        .map_err(|e| format!("tcp: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    // Small buffers: the harness must not be the thing that runs out of memory.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(16 << 20));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .map_err(|e| format!("upgrade: {}", error_kind(&e)))?;
    let channel = plan.channels[plan.assignment[local] as usize].clone();
    let token = plan
        .hmac_secret
        .as_deref()
        .map(|secret| crate::token::mint(secret, global));
    let mut wire = Wire::new(plan.protocol, token, channel, plan.delta);
    if let Some(first) = wire.opening() {
        ws.send(first).await.map_err(|e| error_kind(&e))?;
    }
    let (mut events, mut replies) = (Vec::new(), Vec::new());
    loop {
        let msg = match ws.next().await {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => m,
            Some(Ok(Message::Close(frame))) => {
                return Err(format!(
                    "closed {}",
                    frame.map_or("none".to_string(), |f| u16::from(f.code).to_string())
                ))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(error_kind(&e)),
            None => return Err("reset".into()),
        };
        wire.on_message(&msg, &mut events, &mut replies);
        for reply in replies.drain(..) {
            ws.send(reply).await.map_err(|e| error_kind(&e))?;
        }
        for event in events.drain(..) {
            match event {
                Event::Subscribed => return Ok((ws, wire)),
                Event::Refused(why) => return Err(format!("refused: {why}")),
                Event::Garbled(why) => return Err(format!("garbled: {why}")),
                Event::Publication(_) => {}
            }
        }
    }
}

/// Connects from 127.0.0.<1 + index % spread> when the target is loopback, so the ephemeral
/// ports of one source address never cap the connection count.
async fn dial(addr: SocketAddr, index: usize, spread: u8) -> std::io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if addr.ip().is_loopback() && addr.is_ipv4() && spread > 1 {
        let last = 1 + (index % usize::from(spread)) as u8;
        socket.bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
            0,
        ))?;
    }
    socket.connect(addr).await
}

fn error_kind(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Io(io) => format!("io: {}", io.kind()),
        Error::Http(resp) => format!("http {}", resp.status().as_u16()),
        Error::Protocol(p) => format!("protocol: {p}"),
        Error::Capacity(_) => "capacity".into(),
        other => other.to_string(),
    }
}
