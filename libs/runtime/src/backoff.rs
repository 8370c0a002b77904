//! Retry delays: exponential with full jitter (a random delay up to the current cap), so
//! many clients retrying a recovering DynamoDB, Kafka or object store do not arrive in
//! lockstep. Every service retries through this one type.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The retry stopped because its token fired: the service is giving up (shutting down, or
/// its shutdown grace ran out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted;

pub struct Backoff {
    cap: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff { cap: min, max }
    }

    /// The next delay: uniform in [0, cap], and the cap doubles up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.cap.mul_f64(fastrand::f64());
        self.cap = (self.cap * 2).min(self.max);
        delay
    }

    /// Sleeps the next delay, unless `abort` fires first.
    pub async fn wait(&mut self, abort: &CancellationToken) -> Result<(), Aborted> {
        let delay = self.next_delay();
        tokio::select! {
            _ = abort.cancelled() => Err(Aborted),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_under_a_doubling_cap() {
        let (min, max) = (Duration::from_millis(50), Duration::from_millis(400));
        let mut b = Backoff::new(min, max);
        let caps = [50, 100, 200, 400, 400, 400];
        for cap in caps {
            let d = b.next_delay();
            assert!(d <= Duration::from_millis(cap), "{d:?} over {cap} ms");
        }
        // Jitter: a thousand delays under one cap are not all equal.
        let mut b = Backoff::new(max, max);
        let first = b.next_delay();
        assert!((0..1000).any(|_| b.next_delay() != first));
    }

    #[tokio::test]
    async fn waiting_stops_when_aborted() {
        let abort = CancellationToken::new();
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        abort.cancel();
        assert_eq!(b.wait(&abort).await, Err(Aborted));
    }
}
