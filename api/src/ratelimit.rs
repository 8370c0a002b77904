//! Rate limits on login, registration, refresh and send: token buckets per key, in this
//! process's memory.
//!
//! Per process, not per cluster: with N API replicas a client gets at most N times the
//! limit. That bounds brute force and floods, which is the point; an exact global limit
//! would put Redis on every send's path.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::Limits;

/// One limit: buckets of `burst` tokens refilled at `per_second`.
pub struct Limiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(burst: u32, per_second: f64) -> Limiter {
        Limiter {
            burst: f64::from(burst),
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how long until one is free.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock();
        // Full buckets carry no information: drop them now and then so memory stays bounded
        // by the keys active within one refill period.
        if buckets.len() > 10_000 {
            let (burst, rate) = (self.burst, self.per_second);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        let refilled =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.per_second))
        }
    }
}

pub struct RateLimits {
    /// Per username.
    pub login: Limiter,
    /// Per user.
    pub send: Limiter,
    /// Per client address: each registration hashes a password (argon2id, tens of ms of CPU).
    pub register: Limiter,
    /// Per client address.
    pub refresh: Limiter,
}

/// The peer's address, when the server was started with connect info (`server::run` is);
/// requests without one (in-process tests) share one bucket.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
        Ok(ClientAddr(addr))
    }
}

impl RateLimits {
    pub fn new(l: &Limits) -> RateLimits {
        let per_minute = |n: u32| Limiter::new(n, f64::from(n) / 60.0);
        RateLimits {
            login: per_minute(l.login_per_minute),
            send: Limiter::new(l.send_burst, f64::from(l.send_per_second)),
            register: per_minute(l.register_per_minute),
            refresh: per_minute(l.refresh_per_minute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let l = Limiter::new(3, 1.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at("a", t0).is_ok());
        }
        let wait = l.check_at("a", t0).expect_err("burst used");
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        // Other keys are not affected.
        assert!(l.check_at("b", t0).is_ok());
        // One token back after a second, not more.
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.check_at("a", t1).is_ok());
        assert!(l.check_at("a", t1).is_err());
    }
}
