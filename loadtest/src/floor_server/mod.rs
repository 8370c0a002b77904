//! `chorus-loadtest floor-server`: the cheapest fan-out this machine allows, to measure a
//! hub against in the same run. It is what a perfect hub would cost, not a product.
//!
//! It speaks only what the harness uses of Centrifugo's protocol: `connect` and `subscribe`
//! over JSON on `/connection/websocket` (tokens are not checked, nothing is stored), and
//! `POST /api/publish` in the server API's shape (the key is not checked). Each publication
//! is encoded once, WebSocket header included, and written straight from the request's task
//! to every subscriber's socket: one `write` per delivery, no allocation, no task woken. Only
//! a socket that cannot take the whole frame gets a backlog and a task to drain it.
//!
//! - [`fanout`]: the channel registry, a connection's socket and its backlog, the publication
//!   frame.
//! - [`ws`]: the handshake, the client frames and the commands.
//! - [`http`]: the request head and the publish endpoint.

pub mod fanout;
pub mod http;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use fanout::Channels;

/// The most a request head may take before the floor gives up on it.
const MAX_HEAD: usize = 16 * 1024;

/// Serves until the process is killed.
pub async fn run(listener: TcpListener) -> anyhow::Result<()> {
    let channels = Arc::new(Channels::default());
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors, most likely: wait for some to close rather than spin.
                eprintln!("floor-server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(channels.clone(), stream));
    }
}

/// Reads the first request head and hands the socket to the WebSocket or the HTTP side.
async fn serve(channels: Arc<Channels>, mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(1024);
    let upgrade = loop {
        match http::Head::parse(&buf) {
            Ok(Some(head)) => break head.websocket_key(),
            Ok(None) if buf.len() < MAX_HEAD => {}
            _ => return http::refuse(&mut stream, 400).await,
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    };
    match upgrade {
        Some(Ok(key)) => ws::serve(channels, stream, &key, buf).await,
        Some(Err(status)) => http::refuse(&mut stream, status).await,
        None => http::serve(channels, stream, buf).await,
    }
}
