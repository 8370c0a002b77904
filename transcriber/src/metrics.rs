//! Prometheus metrics, named `chorus_transcriber_<thing>_<unit>`.

use chorus_runtime::metrics::{registered, with_zeros};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    registry: Registry,
    /// Jobs finished, by outcome: transcribed, failed (refused clip, dead-lettered), skipped
    /// (not a voice message), unparsable (dead-lettered).
    pub jobs: IntCounterVec,
    /// Whisper's own time per clip.
    pub inference_seconds: Histogram,
    /// Clip length over inference time: above 1 is faster than real time.
    pub realtime_factor: Histogram,
    /// From the record's timestamp (the upload's produce) to the transcript's ack.
    pub job_latency_seconds: Histogram,
    /// Retries of a step that failed for a reason that passes (Kafka, the object store).
    pub retries: IntCounterVec,
    /// 1 while the Kafka cluster answers.
    pub kafka_up: IntGauge,
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
            "chorus_transcriber",
            env!("CARGO_PKG_VERSION"),
            &[],
        );
        let invariant = "invariant: valid metric";
        let seconds = vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0];
        Metrics {
            jobs: registered(
                &r,
                with_zeros(
                    IntCounterVec::new(
                        Opts::new("chorus_transcriber_jobs_total", "Jobs finished, by outcome"),
                        &["outcome"],
                    )
                    .expect(invariant),
                    &[
                        "transcribed",
                        "failed",
                        "skipped",
                        "unparsable",
                        "thumbnailed",
                        "image_failed",
                    ],
                ),
            ),
            inference_seconds: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "chorus_transcriber_inference_seconds",
                        "Whisper inference per clip",
                    )
                    .buckets(seconds.clone()),
                )
                .expect(invariant),
            ),
            realtime_factor: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "chorus_transcriber_realtime_factor",
                        "Clip seconds per inference second",
                    )
                    .buckets(vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0]),
                )
                .expect(invariant),
            ),
            job_latency_seconds: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "chorus_transcriber_job_latency_seconds",
                        "Upload produced to transcript acknowledged",
                    )
                    .buckets(seconds),
                )
                .expect(invariant),
            ),
            retries: registered(
                &r,
                with_zeros(
                    IntCounterVec::new(
                        Opts::new(
                            "chorus_transcriber_retries_total",
                            "Steps tried again, by step",
                        ),
                        &["step"],
                    )
                    .expect(invariant),
                    &["fetch", "produce", "store", "dead_letter"],
                ),
            ),
            kafka_up: registered(
                &r,
                IntGauge::new("chorus_transcriber_kafka_up", "1 while Kafka answers")
                    .expect(invariant),
            ),
            registry: r,
        }
    }

    pub fn render(&self) -> String {
        chorus_runtime::metrics::render(&self.registry)
    }
}
