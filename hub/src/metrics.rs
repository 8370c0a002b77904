//! Prometheus metrics, named `chorus_hub_<thing>_<unit>`; each feeds a dashboard panel.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Where a publication entered this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The server HTTP API (`publish`, `broadcast`).
    Api,
    /// A client's `publish` command.
    Client,
    /// A Kafka consumer.
    Kafka,
}

pub struct Metrics {
    pub registry: Registry,
    pub connections: IntGauge,
    pub subscriptions: IntGauge,
    pub messages_received: IntCounterVec,
    pub messages_sent: IntCounterVec,
    pub command_duration: HistogramVec,
    pub api_command_duration: HistogramVec,
    pub disconnects: IntCounterVec,
    pub connections_refused: IntCounter,
    /// Proxy calls with no usable answer (down, slow, garbage), by proxy kind.
    pub proxy_failures: IntCounterVec,
    /// Pre-resolved children of `messages_sent`, for the fan-out hot path.
    pub sent_publication: IntCounter,
    pub sent_join_leave: IntCounter,
    pub sent_reply: IntCounter,
    /// Kafka consumers: records by outcome (published, replayed, ignored, dead_lettered).
    pub consumer_records: IntCounterVec,
    /// Kafka consumers: failures by kind (broker, publish, dead_letter, commit).
    pub consumer_failures: IntCounterVec,
    /// Kafka consumers: records behind the partition end.
    pub consumer_lag: IntGaugeVec,
    /// Kafka consumers: 1 while the broker answers, 0 while it does not.
    pub consumer_up: IntGaugeVec,
    /// Kafka consumers: partitions this node reads now (in a shared group, its share).
    pub consumer_partitions: IntGaugeVec,
    /// Kafka consumers: key and payload bytes of the records this node read.
    pub consumer_bytes: IntCounterVec,
    /// Kafka consumers: record timestamp to handed to the hub's broker.
    pub consumer_delay: HistogramVec,
    /// Redis engine: 1 while both connections to every shard are up.
    pub redis_up: IntGauge,
    /// Publications this node accepted, by [`Source`].
    publications: [IntCounter; 3],
    /// Publications the engine handed to this node for fan-out, whichever node published
    /// them: with the Redis engine, this minus the node's own is what came from the cluster.
    pub publications_delivered: IntCounter,
    /// From the engine handing a publication to this node to its frame written to a client's
    /// socket, once per socket write that carried a publication (the oldest one in it).
    pub delivery_seconds: Histogram,
    /// Bytes waiting in clients' outbound queues; set from the hub at each scrape.
    pub queued_bytes: IntGauge,
    /// A publish call into the engine (memory or a Redis round trip), by result.
    pub broker_publish_seconds: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let connections = IntGauge::new("chorus_hub_connections", "WebSocket connections open now")
            .expect("invariant: valid metric");
        let subscriptions = IntGauge::new(
            "chorus_hub_subscriptions",
            "Client channel subscriptions now",
        )
        .expect("invariant: valid metric");
        let messages_received = IntCounterVec::new(
            Opts::new(
                "chorus_hub_messages_received_total",
                "Client commands received, by method",
            ),
            &["type"],
        )
        .expect("invariant: valid metric");
        let messages_sent = IntCounterVec::new(
            Opts::new(
                "chorus_hub_messages_sent_total",
                "Replies and pushes queued to clients, by type",
            ),
            &["type"],
        )
        .expect("invariant: valid metric");
        let buckets = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ];
        let command_duration = HistogramVec::new(
            HistogramOpts::new(
                "chorus_hub_command_duration_seconds",
                "Client command handling time, by method",
            )
            .buckets(buckets.clone()),
            &["method"],
        )
        .expect("invariant: valid metric");
        let api_command_duration = HistogramVec::new(
            HistogramOpts::new(
                "chorus_hub_api_command_duration_seconds",
                "Server API call time, by method",
            )
            .buckets(buckets),
            &["method"],
        )
        .expect("invariant: valid metric");
        let disconnects = IntCounterVec::new(
            Opts::new(
                "chorus_hub_disconnects_total",
                "Connections closed by the server, by close code",
            ),
            &["code"],
        )
        .expect("invariant: valid metric");
        let proxy_failures = IntCounterVec::new(
            Opts::new(
                "chorus_hub_proxy_failures_total",
                "Proxy calls that got no usable answer (the client got a temporary error), by proxy",
            ),
            &["proxy"],
        )
        .expect("invariant: valid metric");
        let connections_refused = IntCounter::new(
            "chorus_hub_connections_refused_total",
            "Connections refused at the connection or open-files limit",
        )
        .expect("invariant: valid metric");
        let consumer_records = IntCounterVec::new(
            Opts::new(
                "chorus_hub_consumer_records_total",
                "Kafka records handled, by consumer and outcome",
            ),
            &["consumer", "outcome"],
        )
        .expect("invariant: valid metric");
        let consumer_failures = IntCounterVec::new(
            Opts::new(
                "chorus_hub_consumer_failures_total",
                "Kafka consumer failures (each retried), by consumer and kind",
            ),
            &["consumer", "kind"],
        )
        .expect("invariant: valid metric");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "chorus_hub_consumer_lag",
                "Records between the consumer's position and the partition end",
            ),
            &["consumer", "topic", "partition"],
        )
        .expect("invariant: valid metric");
        let consumer_up = IntGaugeVec::new(
            Opts::new(
                "chorus_hub_consumer_up",
                "1 while the consumer's Kafka brokers answer, 0 while they do not",
            ),
            &["consumer"],
        )
        .expect("invariant: valid metric");
        let consumer_partitions = IntGaugeVec::new(
            Opts::new(
                "chorus_hub_consumer_partitions",
                "Partitions this node reads now; in a shared consumer group, its share",
            ),
            &["consumer"],
        )
        .expect("invariant: valid metric");
        let consumer_bytes = IntCounterVec::new(
            Opts::new(
                "chorus_hub_consumer_bytes_total",
                "Key and payload bytes of the Kafka records this node read",
            ),
            &["consumer"],
        )
        .expect("invariant: valid metric");
        let consumer_delay = HistogramVec::new(
            HistogramOpts::new(
                "chorus_hub_consumer_delay_seconds",
                "From a record's Kafka timestamp to its publication in the hub",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
            ]),
            &["consumer"],
        )
        .expect("invariant: valid metric");
        let redis_up = IntGauge::new(
            "chorus_hub_redis_up",
            "Redis engine: 1 while the node's Redis connections are up, 0 while not",
        )
        .expect("invariant: valid metric");
        let publications = IntCounterVec::new(
            Opts::new(
                "chorus_hub_publications_total",
                "Publications this node accepted, by source (api, client, kafka)",
            ),
            &["source"],
        )
        .expect("invariant: valid metric");
        let publications_delivered = IntCounter::new(
            "chorus_hub_publications_delivered_total",
            "Publications the engine handed to this node for fan-out, from any node",
        )
        .expect("invariant: valid metric");
        let delivery_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "chorus_hub_delivery_seconds",
                "From a publication reaching this node to its frame written to a client socket",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
        )
        .expect("invariant: valid metric");
        let queued_bytes = IntGauge::new(
            "chorus_hub_client_queue_bytes",
            "Bytes waiting in clients' outbound queues",
        )
        .expect("invariant: valid metric");
        let broker_publish_seconds = HistogramVec::new(
            HistogramOpts::new(
                "chorus_hub_broker_publish_seconds",
                "A publish into the engine (memory, or a Redis round trip), by result",
            )
            .buckets(vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 1.0,
            ]),
            &["result"],
        )
        .expect("invariant: valid metric");
        for result in ["ok", "error"] {
            broker_publish_seconds.with_label_values(&[result]);
        }
        for c in [
            Box::new(connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(publications.clone()),
            Box::new(publications_delivered.clone()),
            Box::new(delivery_seconds.clone()),
            Box::new(queued_bytes.clone()),
            Box::new(broker_publish_seconds.clone()),
            Box::new(redis_up.clone()),
            Box::new(consumer_records.clone()),
            Box::new(consumer_failures.clone()),
            Box::new(consumer_lag.clone()),
            Box::new(consumer_up.clone()),
            Box::new(consumer_partitions.clone()),
            Box::new(consumer_bytes.clone()),
            Box::new(consumer_delay.clone()),
            Box::new(subscriptions.clone()),
            Box::new(messages_received.clone()),
            Box::new(messages_sent.clone()),
            Box::new(command_duration.clone()),
            Box::new(api_command_duration.clone()),
            Box::new(disconnects.clone()),
            Box::new(connections_refused.clone()),
            Box::new(proxy_failures.clone()),
        ] {
            registry
                .register(c)
                .expect("invariant: metric names are unique");
        }
        Metrics {
            sent_publication: messages_sent.with_label_values(&["publication"]),
            sent_join_leave: messages_sent.with_label_values(&["join_leave"]),
            sent_reply: messages_sent.with_label_values(&["reply"]),
            registry,
            connections,
            subscriptions,
            messages_received,
            messages_sent,
            command_duration,
            api_command_duration,
            disconnects,
            connections_refused,
            proxy_failures,
            consumer_records,
            consumer_failures,
            consumer_lag,
            consumer_up,
            consumer_partitions,
            consumer_bytes,
            consumer_delay,
            redis_up,
            publications: ["api", "client", "kafka"].map(|s| publications.with_label_values(&[s])),
            publications_delivered,
            delivery_seconds,
            queued_bytes,
            broker_publish_seconds,
        }
    }

    pub fn published(&self, source: Source) {
        self.publications[source as usize].inc();
    }

    /// Registers the standard `process_*` metrics (memory, CPU, open files against their
    /// limit: the hub's real connection ceiling) and `chorus_hub_build_info`.
    pub fn describe_process(&self, engine: &str) {
        chorus_runtime::metrics::process_and_build_info(
            &self.registry,
            "chorus_hub",
            env!("CARGO_PKG_VERSION"),
            &[("engine", engine)],
        );
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        chorus_runtime::metrics::render(&self.registry)
    }
}
