//! A TCP listener that never lets connections exhaust the process's open-files limit.
//!
//! Each accepted socket carries a guard on a shared count. Past the hard budget the socket is
//! closed at once, leaving descriptors for the API, logs and outgoing connections; between the
//! soft limit and that budget, the WebSocket layer refuses with the connection-limit code.
//! EMFILE on accept is logged and waited out instead of crashing or spinning.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::socket::{CountedStream, Socket, SocketRef};

pub struct FdBudgetListener {
    inner: TcpListener,
    open: Arc<AtomicUsize>,
    budget: usize,
    refused: prometheus::IntCounter,
}

impl FdBudgetListener {
    pub fn new(inner: TcpListener, budget: usize, refused: prometheus::IntCounter) -> Self {
        FdBudgetListener {
            inner,
            open: Arc::new(AtomicUsize::new(0)),
            budget,
            refused,
        }
    }
}

impl axum::serve::Listener for FdBudgetListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.open.load(Ordering::Relaxed) >= self.budget {
                        self.refused.inc();
                        tracing::warn!(%addr, budget = self.budget, "open-files budget reached; connection closed");
                        drop(stream);
                        continue;
                    }
                    // Latency over throughput: pushes are small and must not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    let socket = Socket::new(stream, self.open.clone());
                    return (
                        CountedStream {
                            socket: Arc::new(socket),
                        },
                        addr,
                    );
                }
                Err(e) => {
                    // EMFILE/ENFILE and friends: back off rather than spin or exit.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Every request carries the socket it came in on (see [`SocketRef`]).
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, FdBudgetListener>>
    for SocketRef
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, FdBudgetListener>) -> Self {
        SocketRef(stream.io().socket.clone())
    }
}
