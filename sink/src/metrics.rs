//! Prometheus metrics, named `chorus_sink_<thing>_<unit>`.

use chorus_runtime::metrics::{registered, with_zeros};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    /// Records between the group's committed offset and the partition end.
    pub consumer_lag: IntGaugeVec,
    /// Items durably written, by kind of write (put, delete, update); `rate()` is items/s.
    pub items_written: IntCounterVec,
    /// One BatchWriteItem call, answered (including answers with unprocessed items).
    pub batch_write_seconds: Histogram,
    /// Writes tried again, by reason: unprocessed (DynamoDB handed items back), throttled,
    /// unavailable (no answer, a timeout or a server error).
    pub retries: IntCounterVec,
    /// Records sent to the dead-letter topic, by reason: unparsable, too_large, rejected.
    pub dead_letters: IntCounterVec,
    /// 1 while DynamoDB answers, 0 while it does not.
    pub dynamodb_up: IntGauge,
    /// 1 while the Kafka cluster answers, 0 while it does not.
    pub kafka_up: IntGauge,
    /// Records read from Kafka and not yet written and committed.
    pub pending_records: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        chorus_runtime::metrics::process_and_build_info(
            &r,
            "chorus_sink",
            env!("CARGO_PKG_VERSION"),
            &[],
        );
        let invariant = "invariant: valid metric";
        Metrics {
            consumer_lag: registered(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "chorus_sink_consumer_lag",
                        "Records behind the partition end, from the committed offset",
                    ),
                    &["partition"],
                )
                .expect(invariant),
            ),
            items_written: registered(
                &r,
                with_zeros(
                    IntCounterVec::new(
                        Opts::new(
                            "chorus_sink_items_written_total",
                            "Items durably written to DynamoDB",
                        ),
                        &["op"],
                    )
                    .expect(invariant),
                    &["put", "delete", "update"],
                ),
            ),
            batch_write_seconds: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "chorus_sink_batch_write_seconds",
                        "BatchWriteItem call latency",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    ]),
                )
                .expect(invariant),
            ),
            retries: registered(
                &r,
                with_zeros(
                    IntCounterVec::new(
                        Opts::new(
                            "chorus_sink_retries_total",
                            "DynamoDB writes retried, by reason",
                        ),
                        &["reason"],
                    )
                    .expect(invariant),
                    &["unprocessed", "throttled", "unavailable"],
                ),
            ),
            dead_letters: registered(
                &r,
                with_zeros(
                    IntCounterVec::new(
                        Opts::new(
                            "chorus_sink_dead_letters_total",
                            "Records sent to the dead-letter topic, by reason",
                        ),
                        &["reason"],
                    )
                    .expect(invariant),
                    &["unparsable", "too_large", "rejected"],
                ),
            ),
            dynamodb_up: registered(
                &r,
                IntGauge::new("chorus_sink_dynamodb_up", "1 while DynamoDB answers")
                    .expect(invariant),
            ),
            kafka_up: registered(
                &r,
                IntGauge::new("chorus_sink_kafka_up", "1 while Kafka answers").expect(invariant),
            ),
            pending_records: registered(
                &r,
                IntGauge::new(
                    "chorus_sink_pending_records",
                    "Records read and not yet written and committed",
                )
                .expect(invariant),
            ),
            registry: r,
        }
    }

    pub fn render(&self) -> String {
        chorus_runtime::metrics::render(&self.registry)
    }
}
