//! Channels, their subscribers, and the write of one pre-encoded frame to each.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::net::TcpStream;

/// A subscriber that falls this far behind is closed: memory stays bounded.
const BACKLOG_MAX: usize = 4 << 20;

/// One client socket, shared by its reading task and the channels it is subscribed to.
pub struct Conn {
    pub stream: TcpStream,
    backlog: Mutex<Backlog>,
}

/// Bytes the socket would not take yet, in order. Empty (and unallocated) nearly always.
#[derive(Default)]
struct Backlog {
    bytes: Vec<u8>,
    /// A task is draining `bytes`.
    draining: bool,
    /// Closed for falling behind or a failed write: nothing more is sent.
    dead: bool,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Arc<Self> {
        Arc::new(Conn {
            stream,
            backlog: Mutex::new(Backlog::default()),
        })
    }

    /// Writes `frame` now when nothing waits before it; otherwise queues it behind, and makes
    /// sure a task drains the queue once the socket is writable.
    pub fn send(self: &Arc<Self>, frame: &[u8]) {
        let mut b = self.backlog.lock();
        if b.dead {
            return;
        }
        if b.bytes.is_empty() {
            match self.stream.try_write(frame) {
                Ok(n) if n == frame.len() => return,
                Ok(n) => b.bytes.extend_from_slice(&frame[n..]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => b.bytes.extend_from_slice(frame),
                Err(_) => return self.kill(&mut b),
            }
        } else if b.bytes.len() + frame.len() > BACKLOG_MAX {
            return self.kill(&mut b);
        } else {
            b.bytes.extend_from_slice(frame);
        }
        if !b.draining {
            b.draining = true;
            tokio::spawn(drain(self.clone()));
        }
    }

    /// Stops sending and shuts the socket, which ends the reading task too.
    fn kill(&self, b: &mut Backlog) {
        b.dead = true;
        b.bytes = Vec::new();
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Both);
    }
}

/// Writes a connection's backlog as the socket takes it.
async fn drain(conn: Arc<Conn>) {
    loop {
        let ready = conn.stream.writable().await;
        let mut b = conn.backlog.lock();
        if ready.is_err() {
            return conn.kill(&mut b);
        }
        if b.dead {
            b.draining = false;
            return;
        }
        match conn.stream.try_write(&b.bytes) {
            Ok(n) => {
                b.bytes.drain(..n);
                if b.bytes.is_empty() {
                    b.bytes = Vec::new();
                    b.draining = false;
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return conn.kill(&mut b),
        }
    }
}

/// Every channel with at least one subscriber.
#[derive(Default)]
pub struct Channels {
    map: RwLock<HashMap<Box<str>, Channel>>,
}

struct Channel {
    subscribers: Vec<Arc<Conn>>,
    offset: AtomicU64,
}

impl Channels {
    pub fn subscribe(&self, channel: &str, conn: &Arc<Conn>) {
        let mut map = self.map.write();
        let ch = map.entry(channel.into()).or_insert_with(|| Channel {
            subscribers: Vec::new(),
            offset: AtomicU64::new(0),
        });
        ch.subscribers.push(conn.clone());
    }

    pub fn unsubscribe(&self, channel: &str, conn: &Arc<Conn>) {
        let mut map = self.map.write();
        let Some(ch) = map.get_mut(channel) else {
            return;
        };
        if let Some(i) = ch.subscribers.iter().position(|c| Arc::ptr_eq(c, conn)) {
            ch.subscribers.swap_remove(i);
        }
        if ch.subscribers.is_empty() {
            map.remove(channel);
        }
    }

    /// Encodes one publication push for `channel` and writes it to every subscriber; returns
    /// how many there were. Publications to other channels fan out at the same time (the
    /// lock is shared); a subscribe waits for the fan-out in progress.
    pub fn publish(&self, channel: &str, data: &str) -> usize {
        let map = self.map.read();
        let Some(ch) = map.get(channel) else {
            return 0;
        };
        let offset = ch.offset.fetch_add(1, Ordering::Relaxed) + 1;
        let frame = publication_frame(channel, data, offset);
        for conn in &ch.subscribers {
            conn.send(&frame);
        }
        ch.subscribers.len()
    }
}

/// The publication push every subscriber of `channel` gets, as one ready WebSocket frame.
/// `data` is JSON already (the server API's `data`).
pub fn publication_frame(channel: &str, data: &str, offset: u64) -> Vec<u8> {
    let channel = serde_json::to_string(channel).expect("invariant: a str serializes");
    let push =
        format!(r#"{{"push":{{"channel":{channel},"pub":{{"data":{data},"offset":{offset}}}}}}}"#);
    chorus_protocol::websocket::frame(chorus_protocol::websocket::OP_TEXT, push.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_frame_carries_a_centrifugo_push() {
        let f = publication_frame("lt \"1\"", r#"{"t":1,"s":2}"#, 7);
        let body = &f[2..];
        assert_eq!(usize::from(f[1]), body.len());
        let v: serde_json::Value = serde_json::from_slice(body).expect("json");
        assert_eq!(v["push"]["channel"], "lt \"1\"");
        assert_eq!(v["push"]["pub"]["data"]["s"], 2);
        assert_eq!(v["push"]["pub"]["offset"], 7);
    }
}
