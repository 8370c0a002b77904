//! The floor of Kafka delivery latency: a bare librdkafka consumer on the topic the hub reads,
//! tuned the same way, timing each record from its payload's send time to its arrival. The
//! hub's produce→client latency minus this is what the hub adds.

use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::payload::{now_micros, Payload};
use crate::stats;

/// Reads every partition of `topic` from its end until `stop` turns true.
pub async fn measure(
    brokers: String,
    topic: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Histogram<u64>> {
    let consumer: StreamConsumer = chorus_runtime::kafka::client(&brokers, "chorus-loadtest")
        .set(
            "group.id",
            format!("chorus-loadtest-floor-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // The same low-latency settings as the hub's consumer.
        .set("fetch.wait.max.ms", "5")
        .set("fetch.min.bytes", "1")
        .set("socket.nagle.disable", "true")
        .create()?;
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(5))
        .context("kafka metadata for the floor consumer")?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(t.name(), p.id(), Offset::End)?;
        }
    }
    anyhow::ensure!(tpl.count() > 0, "topic {topic} has no partitions");
    consumer.assign(&tpl)?;
    let mut hist = stats::histogram();
    loop {
        let m = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            m = consumer.recv() => m?,
        };
        let now = now_micros();
        if let Some(p) = m
            .payload()
            .and_then(|b| serde_json::from_slice::<Payload>(b).ok())
        {
            let _ = hist.record(now.saturating_sub(p.t).max(1));
        }
    }
    Ok(hist)
}
