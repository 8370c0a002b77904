//! Publishing through Kafka: records in Centrifugo's publication data mode (the payload is the
//! data, the `centrifugo-channels` header names the channel), keyed by channel so that one
//! channel stays in one partition and in order.
//!
//! A record counts as published once librdkafka has queued it: the idempotent producer keeps
//! a partition's records in order with several in flight, which is what lets one channel
//! carry thousands of records a second. Delivery failures are counted as they come back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{PublishError, Publisher};

pub struct KafkaPublisher {
    producer: FutureProducer,
    topic: String,
    failed: Arc<AtomicU64>,
    first_error: Arc<Mutex<Option<String>>>,
}

impl KafkaPublisher {
    pub fn new(brokers: &str, topic: &str, linger_ms: u32) -> anyhow::Result<Self> {
        let client = chorus_runtime::kafka::client(brokers, "chorus-loadtest");
        let producer = chorus_runtime::kafka::reliable_producer(&client)
            // 0 sends each record at once; a few ms lets a slow broker take batches.
            .set("linger.ms", linger_ms.to_string())
            .set("socket.nagle.disable", "true")
            .create()?;
        Ok(KafkaPublisher {
            producer,
            topic: topic.to_owned(),
            failed: Arc::default(),
            first_error: Arc::default(),
        })
    }

    /// Records the broker did not take, and the first reason.
    pub fn failures(&self) -> (u64, Option<String>) {
        (
            self.failed.load(Ordering::Relaxed),
            self.first_error.lock().clone(),
        )
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, channel: &str, data: &str) -> Result<(), PublishError> {
        let headers = OwnedHeaders::new().insert(Header {
            key: "centrifugo-channels",
            value: Some(channel),
        });
        let record = FutureRecord::to(&self.topic)
            .key(channel)
            .payload(data)
            .headers(headers);
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| PublishError::Kafka(e.to_string()))?;
        let (failed, first) = (self.failed.clone(), self.first_error.clone());
        tokio::spawn(async move {
            let outcome = match delivery.await {
                Ok(Ok(_)) => return,
                Ok(Err((e, _))) => e.to_string(),
                Err(_) => "producer dropped before delivery".to_owned(),
            };
            failed.fetch_add(1, Ordering::Relaxed);
            first.lock().get_or_insert(outcome);
        });
        Ok(())
    }
}
