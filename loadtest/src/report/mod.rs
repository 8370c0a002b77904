//! The result of a run: merged from the workers, written as JSON, Markdown and a PNG chart.

pub mod chart;
pub mod compare;
pub mod markdown;

use std::collections::BTreeMap;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cli::{Protocol, RunArgs, Scenario};
use crate::ipc::WorkerResult;
use crate::sampler::Sample;
use crate::schedule::Outcome;
use crate::stats;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub count: u64,
}

impl Percentiles {
    /// From a histogram of microseconds, in milliseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            count: h.len(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    pub pids: Vec<i32>,
    pub rss_baseline_bytes: u64,
    pub rss_loaded_bytes: u64,
    pub rss_peak_bytes: u64,
    /// Server CPU time spent from the first publication to the end of the drain.
    pub cpu_seconds_publishing: Option<f64>,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Seconds since the run started.
    pub t: f64,
    pub delivered: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub label: String,
    pub scenario: Scenario,
    pub protocol: Protocol,
    pub urls: Vec<String>,
    pub workers: usize,
    pub connections_requested: usize,
    pub connections: u64,
    pub connect_errors: u64,
    pub connect_errors_by_kind: BTreeMap<String, u64>,
    pub connect_latency_ms: Percentiles,
    pub channels: usize,
    pub payload_bytes: usize,
    pub publish_rate: f64,
    pub publish_rate_achieved: f64,
    pub publications: u64,
    pub publish_errors: u64,
    pub publish_first_error: Option<String>,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub deliveries_per_sec: f64,
    pub latency_ms: Percentiles,
    /// Produce→consume latency of a bare Kafka consumer in the same run (`--kafka-floor`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_floor_latency_ms: Option<Percentiles>,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub protocol_errors: u64,
    /// Bytes of WebSocket messages the clients received after subscribing.
    #[serde(default)]
    pub bytes_received: u64,
    pub unexpected_disconnects: u64,
    pub unexpected_disconnects_by_code: BTreeMap<String, u64>,
    pub server: Option<ServerFigures>,
    pub bytes_per_connection: Option<f64>,
    pub deliveries_per_server_cpu_sec: Option<f64>,
    pub server_samples: Vec<Sample>,
    pub series: Vec<Point>,
}

pub struct Inputs<'a> {
    pub scenario: Scenario,
    pub args: &'a RunArgs,
    pub workers: usize,
    pub channels: usize,
    pub results: Vec<WorkerResult>,
    pub outcome: &'a Outcome,
    pub baseline: Option<Sample>,
    pub loaded: Option<Sample>,
    pub cpu_window: Option<(Sample, Sample)>,
    pub samples: Vec<Sample>,
    pub run_started_unix_us: u64,
}

impl Report {
    pub fn build(i: Inputs<'_>) -> anyhow::Result<Self> {
        let mut latency = stats::histogram();
        let mut connect = stats::histogram();
        let mut per_second: BTreeMap<u64, (u64, Histogram<u64>)> = BTreeMap::new();
        let mut connect_errors_by_kind = BTreeMap::new();
        let mut disconnects = BTreeMap::new();
        let (mut connections, mut expected, mut delivered) = (0, 0, 0);
        let (mut lost, mut duplicated, mut reordered, mut protocol_errors) = (0, 0, 0, 0);
        let mut bytes_received = 0;
        let mut last_delivery_us = 0;
        for r in &i.results {
            latency
                .add(stats::decode(&r.latency_us)?)
                .context("merge latency")?;
            connect
                .add(stats::decode(&r.connect_latency_us)?)
                .context("merge connect")?;
            for s in &r.series {
                let (count, h) = per_second
                    .entry(s.second)
                    .or_insert_with(|| (0, stats::histogram()));
                *count += s.delivered;
                h.add(stats::decode(&s.latency_us)?)
                    .context("merge series")?;
            }
            merge(&mut connect_errors_by_kind, &r.connect_errors);
            merge(&mut disconnects, &r.unexpected_disconnects);
            connections += r.connected;
            expected += r.expected;
            delivered += r.delivered;
            lost += r.lost;
            duplicated += r.duplicated;
            reordered += r.reordered;
            protocol_errors += r.protocol_errors;
            bytes_received += r.bytes_received;
            last_delivery_us = last_delivery_us.max(r.last_delivery_us);
        }
        let start_s = i.run_started_unix_us as f64 / 1e6;
        let series = per_second
            .into_iter()
            .map(|(second, (count, h))| Point {
                t: second as f64 - start_s,
                delivered: count,
                p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            })
            .collect();
        let publications = i.outcome.total();
        let window_s = (last_delivery_us.saturating_sub(i.outcome.started_us)) as f64 / 1e6;
        let cpu = i.cpu_window.map(|(a, b)| b.cpu_seconds - a.cpu_seconds);
        let server = i
            .baseline
            .zip(i.loaded)
            .map(|(base, loaded)| ServerFigures {
                pids: i.args.server_pids.clone(),
                rss_baseline_bytes: base.rss_bytes,
                rss_loaded_bytes: loaded.rss_bytes,
                rss_peak_bytes: i
                    .samples
                    .iter()
                    .map(|s| s.rss_bytes)
                    .max()
                    .unwrap_or(loaded.rss_bytes),
                cpu_seconds_publishing: cpu,
            });
        let bytes_per_connection = server.as_ref().filter(|_| connections > 0).map(|s| {
            (s.rss_loaded_bytes as f64 - s.rss_baseline_bytes as f64) / connections as f64
        });
        Ok(Report {
            label: i.args.label.clone(),
            scenario: i.scenario,
            protocol: i.args.protocol,
            urls: i.args.urls.clone(),
            workers: i.workers,
            connections_requested: i.args.connections,
            connections,
            connect_errors: connect_errors_by_kind.values().sum(),
            connect_errors_by_kind,
            connect_latency_ms: Percentiles::of(&connect),
            channels: i.channels,
            payload_bytes: i.args.payload_size,
            publish_rate: if i.scenario == Scenario::Idle {
                0.0
            } else {
                i.args.publish_rate
            },
            publish_rate_achieved: if i.outcome.elapsed.is_zero() {
                0.0
            } else {
                publications as f64 / i.outcome.elapsed.as_secs_f64()
            },
            publications,
            publish_errors: i.outcome.errors,
            publish_first_error: i.outcome.first_error.clone(),
            expected_deliveries: expected,
            delivered,
            deliveries_per_sec: if window_s > 0.0 {
                delivered as f64 / window_s
            } else {
                0.0
            },
            latency_ms: Percentiles::of(&latency),
            kafka_floor_latency_ms: None,
            lost,
            duplicated,
            reordered,
            protocol_errors,
            bytes_received,
            unexpected_disconnects: disconnects.values().sum(),
            unexpected_disconnects_by_code: disconnects,
            server,
            bytes_per_connection,
            deliveries_per_server_cpu_sec: cpu.filter(|&c| c > 0.0).map(|c| delivered as f64 / c),
            server_samples: i.samples,
            series,
        })
    }

    /// Everything connected and arrived exactly once, and nothing failed on the way.
    pub fn healthy(&self) -> bool {
        self.connect_errors == 0
            && self.connections as usize == self.connections_requested
            && self.lost == 0
            && self.duplicated == 0
            && self.unexpected_disconnects == 0
            && self.publish_errors == 0
            && self.protocol_errors == 0
            && self.delivered == self.expected_deliveries
    }

    pub fn one_line(&self) -> String {
        format!(
            "{:?}: {} connections, {} delivered of {} ({:.0}/s), p50 {:.2} ms p99 {:.2} ms max {:.2} ms, \
             lost {} duplicated {} unexpected disconnects {}, {} bytes/conn, {} deliveries/server-cpu-s",
            self.scenario,
            self.connections,
            self.delivered,
            self.expected_deliveries,
            self.deliveries_per_sec,
            self.latency_ms.p50,
            self.latency_ms.p99,
            self.latency_ms.max,
            self.lost,
            self.duplicated,
            self.unexpected_disconnects,
            self.bytes_per_connection.map_or("n/a".into(), |b| format!("{b:.0}")),
            self.deliveries_per_server_cpu_sec.map_or("n/a".into(), |d| format!("{d:.0}")),
        )
    }

    pub fn write_outputs(&self, args: &RunArgs) -> anyhow::Result<()> {
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(self)?)
                .with_context(|| format!("write {}", path.display()))?;
        }
        if let Some(path) = &args.markdown {
            std::fs::write(path, markdown::render(self))
                .with_context(|| format!("write {}", path.display()))?;
        }
        if let Some(path) = &args.png {
            chart::draw(self, path, &args.font)?;
        }
        Ok(())
    }
}

fn merge(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}
