//! Wakes a connection task when its queue has something: one flag and one waker.
//!
//! `tokio::sync::Notify` keeps a waiter list behind a mutex and every wait registers and
//! unregisters in it; with one waiter per connection and a wake per delivery, that bookkeeping
//! was a visible part of fan-out. A connection has exactly one waiter, its own task, so a
//! flag plus an [`AtomicWaker`] does the same job without a lock, in 24 bytes.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;

#[derive(Default)]
pub struct Signal {
    pending: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// Marks work pending and wakes the waiting task, if any. A signal with no waiter is kept
    /// for the next [`Signal::wait`], like a `Notify` permit.
    pub fn notify(&self) {
        // Already pending means a wake is on its way or the task has yet to look: one flag
        // flip is all a burst of pushes costs after the first.
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Resolves once [`Signal::notify`] has been called since the last wait resolved.
    /// Only one task may wait at a time.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.pending.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A notify between the swap and the register would otherwise be missed.
            if self.pending.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_notify_before_the_wait_is_kept() {
        let s = Signal::default();
        s.notify();
        tokio::time::timeout(Duration::from_secs(5), s.wait())
            .await
            .expect("the earlier notify resolves the wait");
    }

    #[tokio::test]
    async fn a_notify_wakes_a_waiting_task_and_is_consumed() {
        let s = Arc::new(Signal::default());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.wait().await }
        });
        tokio::task::yield_now().await;
        s.notify();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task ok");
        // Consumed: a second wait stays pending.
        assert!(tokio::time::timeout(Duration::from_millis(50), s.wait())
            .await
            .is_err());
    }
}
