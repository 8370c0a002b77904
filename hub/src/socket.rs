//! A client's TCP socket, shared: hyper reads the HTTP request and writes the response
//! through it (as [`CountedStream`]); after a WebSocket upgrade the connection task reads and
//! writes it directly, and the fan-out writes publications to it from whatever task is
//! delivering them (see [`crate::client::websocket`]). Every method takes `&self`, so one
//! `Arc<Socket>` serves them all.
//!
//! The socket counts against the listener's open-files budget until its last holder lets go.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub struct Socket {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a write that must not wait managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    All,
    /// Only this many bytes went; the rest must follow before anything else.
    Part(usize),
    /// Nothing went: the socket is full, or failed (the connection task will find out).
    Nothing,
}

impl Socket {
    /// Counts `stream` in `open` until dropped.
    pub fn new(stream: TcpStream, open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Socket { stream, open }
    }

    /// Writes as much of `bytes` as the kernel takes now, without waiting.
    pub fn write_now(&self, bytes: &[u8]) -> Written {
        match self.stream.try_write(bytes) {
            Ok(n) if n == bytes.len() => Written::All,
            Ok(n) => Written::Part(n),
            Err(_) => Written::Nothing,
        }
    }

    /// Writes all of `bufs`, in order, waiting for room as needed. Not cancel-safe: a caller
    /// that gives up mid-way must close the connection.
    pub async fn write_all_vectored(&self, bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
        let mut bufs = &mut bufs[..];
        io::IoSlice::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write_vectored(bufs) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => io::IoSlice::advance_slices(&mut bufs, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits until a read may find bytes. Cancel-safe. Only one task may wait (the
    /// connection's): the waker is kept in the socket's registration, not in the future,
    /// which keeps an idle connection's task 150 bytes smaller than `readable()` would.
    pub async fn readable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.stream.poll_read_ready(cx)).await
    }

    /// Reads what has arrived, without waiting; `WouldBlock` when nothing has.
    pub fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.try_read(buf)
    }
}

/// The socket as hyper sees it, until (and unless) the connection is upgraded.
pub struct CountedStream {
    pub socket: Arc<Socket>,
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &self.socket.stream;
        loop {
            ready!(stream.poll_read_ready(cx))?;
            match stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = &self.socket.stream;
        loop {
            ready!(stream.poll_write_ready(cx))?;
            match stream.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = &self.socket.stream;
        loop {
            ready!(stream.poll_write_ready(cx))?;
            match stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here: every write went to the kernel.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = socket2::SockRef::from(&self.socket.stream).shutdown(std::net::Shutdown::Write);
        Poll::Ready(r)
    }
}

/// The socket a request came in on, for a handler that takes the connection over (the
/// WebSocket endpoint). Added to every request by `axum::serve`'s connect info (the
/// listener's `Connected` impl).
#[derive(Clone)]
pub struct SocketRef(pub Arc<Socket>);
