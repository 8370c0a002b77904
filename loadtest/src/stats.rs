//! A worker's measurements, shared by its connection tasks.
//!
//! Counters are atomics, read by the progress reporter without locking. Histograms sit behind
//! one mutex: a record is a few nanoseconds, far below the cost of the socket read before it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::ipc::{Progress, SecondSample};

/// Latencies are recorded in microseconds, up to ten minutes.
const MAX_US: u64 = 600_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("invariant: valid histogram bounds")
}

#[derive(Default)]
pub struct Stats {
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    pub delivered: AtomicU64,
    pub disconnects: AtomicU64,
    inner: Mutex<Inner>,
}

struct Inner {
    latency: Histogram<u64>,
    connect: Histogram<u64>,
    seconds: BTreeMap<u64, (u64, Histogram<u64>)>,
    connect_errors: BTreeMap<String, u64>,
    disconnects: BTreeMap<String, u64>,
    first_delivery_us: u64,
    last_delivery_us: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            latency: histogram(),
            connect: histogram(),
            seconds: BTreeMap::new(),
            connect_errors: BTreeMap::new(),
            disconnects: BTreeMap::new(),
            first_delivery_us: 0,
            last_delivery_us: 0,
        }
    }
}

/// What [`Stats::take`] hands to the result.
pub struct Snapshot {
    pub latency: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub series: Vec<SecondSample>,
    pub connect_errors: BTreeMap<String, u64>,
    pub disconnects: BTreeMap<String, u64>,
    pub first_delivery_us: u64,
    pub last_delivery_us: u64,
}

impl Stats {
    pub fn connected(&self, latency_us: u64) {
        self.connected.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .inner
            .lock()
            .connect
            .record(latency_us.clamp(1, MAX_US));
    }

    pub fn connect_failed(&self, kind: String) {
        self.connect_failed.fetch_add(1, Ordering::Relaxed);
        *self.inner.lock().connect_errors.entry(kind).or_default() += 1;
    }

    pub fn disconnected(&self, code: String) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
        *self.inner.lock().disconnects.entry(code).or_default() += 1;
    }

    /// Records one delivery sent at `sent_us` and received at `now_us`.
    pub fn delivered(&self, sent_us: u64, now_us: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let latency = now_us.saturating_sub(sent_us).clamp(1, MAX_US);
        let mut inner = self.inner.lock();
        let _ = inner.latency.record(latency);
        let (count, hist) = inner
            .seconds
            .entry(now_us / 1_000_000)
            .or_insert_with(|| (0, histogram()));
        *count += 1;
        let _ = hist.record(latency);
        if inner.first_delivery_us == 0 {
            inner.first_delivery_us = now_us;
        }
        inner.last_delivery_us = inner.last_delivery_us.max(now_us);
    }

    pub fn progress(&self) -> Progress {
        Progress {
            connected: self.connected.load(Ordering::Relaxed),
            connect_errors: self.connect_failed.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            disconnects: self.disconnects.load(Ordering::Relaxed),
        }
    }

    pub fn take(&self) -> Snapshot {
        let inner = std::mem::take(&mut *self.inner.lock());
        Snapshot {
            latency: inner.latency,
            connect: inner.connect,
            series: inner
                .seconds
                .into_iter()
                .map(|(second, (delivered, h))| SecondSample {
                    second,
                    delivered,
                    latency_us: encode(&h),
                })
                .collect(),
            connect_errors: inner.connect_errors,
            disconnects: inner.disconnects,
            first_delivery_us: inner.first_delivery_us,
            last_delivery_us: inner.last_delivery_us,
        }
    }
}

/// Base64 of the histogram's V2 serialization.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut buf)
        .expect("invariant: serializing to a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

pub fn decode(text: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    let h: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice())?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_the_pipe() {
        let s = Stats::default();
        for i in 1..=1000 {
            s.delivered(1_000_000, 1_000_000 + i * 10);
        }
        let snap = s.take();
        let back = decode(&encode(&snap.latency)).expect("decodes");
        assert_eq!(back.len(), 1000);
        assert_eq!(
            back.value_at_quantile(0.5),
            snap.latency.value_at_quantile(0.5)
        );
        assert_eq!(snap.series.iter().map(|x| x.delivered).sum::<u64>(), 1000);
    }
}
