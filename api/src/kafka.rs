//! Kafka clients: one idempotent producer (sends and the outbox relay) and the state-event
//! consumer's config.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::Kafka;

/// acks=all and idempotence: a send is answered only once every in-sync replica has it, and
/// librdkafka's own retries never duplicate or reorder a partition.
pub fn producer(k: &Kafka) -> anyhow::Result<FutureProducer> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("message.timeout.ms", k.send_timeout_ms.to_string());
    for (key, value) in &k.librdkafka {
        c.set(key, value);
    }
    Ok(c.create()?)
}

pub fn consumer_config(k: &Kafka) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("group.id", &k.state_group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    chorus_sink::group::static_member(&mut c, &k.state_instance_id);
    for (key, value) in &k.librdkafka {
        c.set(key, value);
    }
    c
}

/// Produces one record and waits for its acknowledgement.
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    timeout: Duration,
) -> Result<(i32, i64), String> {
    let record =
        FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(OwnedHeaders::new().insert(Header {
                key: "content-type",
                value: Some("application/json"),
            }));
    producer
        .send(record, timeout)
        .await
        .map(|delivery| (delivery.partition, delivery.offset))
        .map_err(|(e, _)| e.to_string())
}
