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
    let mut c = chorus_runtime::kafka::reliable_producer(&client(k));
    c.set("linger.ms", "1")
        .set("message.timeout.ms", k.send_timeout_ms.to_string());
    chorus_runtime::kafka::passthrough(&mut c, &k.librdkafka);
    Ok(c.create()?)
}

pub fn consumer_config(k: &Kafka) -> ClientConfig {
    let mut c = client(k);
    c.set("group.id", &k.state_group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    chorus_runtime::kafka::static_member(&mut c, &k.state_instance_id);
    chorus_runtime::kafka::passthrough(&mut c, &k.librdkafka);
    c
}

fn client(k: &Kafka) -> ClientConfig {
    chorus_runtime::kafka::client(&k.brokers, "chorus-api")
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
