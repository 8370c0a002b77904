//! `chorus-loadtest produce`: each line of standard input becomes one Kafka record, sent in
//! order and acknowledged by the broker before the command exits. For trying a consumer by
//! hand, and for the SDK tests that feed the hub through Kafka.

use std::time::Duration;

use anyhow::Context;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::io::AsyncBufReadExt;

pub async fn run(
    brokers: &str,
    topic: &str,
    key: Option<&str>,
    headers: &[String],
) -> anyhow::Result<()> {
    let producer: FutureProducer = chorus_runtime::kafka::reliable_producer(
        &chorus_runtime::kafka::client(brokers, "chorus-loadtest"),
    )
    .set("linger.ms", "0")
    .create()?;
    let mut owned = OwnedHeaders::new();
    for h in headers {
        let (k, v) = h
            .split_once('=')
            .with_context(|| format!("--header {h:?} is not NAME=VALUE"))?;
        owned = owned.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut n = 0u64;
    while let Some(line) = lines.next_line().await? {
        if line.is_empty() {
            continue;
        }
        let mut record = FutureRecord::to(topic)
            .payload(&line)
            .headers(owned.clone());
        if let Some(k) = key {
            record = record.key(k);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .with_context(|| format!("producing record {} to {topic}", n + 1))?;
        n += 1;
    }
    eprintln!("produced {n} record(s) to {topic}");
    Ok(())
}
