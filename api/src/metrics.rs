//! Prometheus metrics of the API (`chorus_api_*`), and the middleware that times requests.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// By route template and status: error rates per endpoint.
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    /// Messages acknowledged by Kafka.
    pub messages_sent: prometheus::IntCounter,
    /// Messages committed whose acknowledgement did not come in time (answered 202; the relay
    /// publishes them).
    pub messages_queued: prometheus::IntCounter,
    /// Membership lookups by `result`: hit, miss, bypass (Redis down).
    pub membership_cache: IntCounterVec,
    /// Outbox rows not yet published: grows while Kafka is down.
    pub outbox_pending: IntGauge,
    pub outbox_published: prometheus::IntCounter,
    /// State events applied by the consumer, by `result`: applied, duplicate, failed.
    pub state_events: IntCounterVec,
    /// Requests refused by a rate limit, by `limit`.
    pub rate_limited: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        chorus_runtime::metrics::process_and_build_info(
            &registry,
            "chorus_api",
            env!("CARGO_PKG_VERSION"),
            &[],
        );
        let requests = IntCounterVec::new(
            Opts::new(
                "chorus_api_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .expect("invariant: valid metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "chorus_api_request_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route"],
        )
        .expect("invariant: valid metric");
        let messages_sent = prometheus::IntCounter::new(
            "chorus_api_messages_sent_total",
            "messages acknowledged by Kafka",
        )
        .expect("invariant: valid metric");
        let messages_queued = prometheus::IntCounter::new(
            "chorus_api_messages_queued_total",
            "messages committed but not acknowledged by Kafka in time, left to the relay",
        )
        .expect("invariant: valid metric");
        let membership_cache = IntCounterVec::new(
            Opts::new(
                "chorus_api_membership_cache_total",
                "membership lookups by result",
            ),
            &["result"],
        )
        .expect("invariant: valid metric");
        let outbox_pending = IntGauge::new(
            "chorus_api_outbox_pending",
            "outbox rows waiting to be published",
        )
        .expect("invariant: valid metric");
        let outbox_published = prometheus::IntCounter::new(
            "chorus_api_outbox_published_total",
            "outbox rows published and acknowledged",
        )
        .expect("invariant: valid metric");
        let state_events = IntCounterVec::new(
            Opts::new(
                "chorus_api_state_events_total",
                "state events consumed by result",
            ),
            &["result"],
        )
        .expect("invariant: valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "chorus_api_rate_limited_total",
                "requests refused by a rate limit",
            ),
            &["limit"],
        )
        .expect("invariant: valid metric");
        let with_zeros = chorus_runtime::metrics::with_zeros;
        let membership_cache = with_zeros(membership_cache, &["hit", "miss", "bypass"]);
        let state_events = with_zeros(state_events, &["applied", "duplicate", "failed"]);
        let rate_limited = with_zeros(rate_limited, &["login", "send", "register", "refresh"]);
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(messages_sent.clone()),
            Box::new(messages_queued.clone()),
            Box::new(membership_cache.clone()),
            Box::new(outbox_pending.clone()),
            Box::new(outbox_published.clone()),
            Box::new(state_events.clone()),
            Box::new(rate_limited.clone()),
        ] {
            registry
                .register(c)
                .expect("invariant: each metric registers once");
        }
        Metrics {
            registry,
            requests,
            request_seconds,
            messages_sent,
            messages_queued,
            membership_cache,
            outbox_pending,
            outbox_published,
            state_events,
            rate_limited,
        }
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("invariant: text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("invariant: the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    // The route template, never the raw path: ids would make unbounded label values.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    metrics
        .request_seconds
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    response
}
