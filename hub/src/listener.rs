//! A TCP listener that never lets connections exhaust the process's open-files limit.
//!
//! Each accepted socket carries a guard on a shared count. Past the hard budget the socket is
//! closed at once, leaving descriptors for the API, logs and outgoing connections; between the
//! soft limit and that budget, the WebSocket layer refuses with the connection-limit code.
//! EMFILE on accept is logged and waited out instead of crashing or spinning.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

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

/// A socket counted against the budget until dropped.
pub struct CountedStream {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
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
                    self.open.fetch_add(1, Ordering::Relaxed);
                    return (
                        CountedStream {
                            stream,
                            open: self.open.clone(),
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

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
