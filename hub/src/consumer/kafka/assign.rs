//! Partition assignment and replay: every partition of the consumer's topics, found and
//! re-checked every second (every 100 ms while replaying), assigned from the group's
//! committed offset, or `replay_records` before it in chat-event mode; lag for metrics.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer as _;
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::{fail, Part, Shared, METADATA_TIMEOUT};
use crate::consumer::record::Mode;

/// Finds partitions (new topics, added partitions), assigns them, and reports lag and
/// reachability; every second, or every 100 ms while the startup replay runs.
pub(super) async fn watch_partitions(shared: Arc<Shared>, ready: watch::Sender<bool>) {
    let up = shared
        .node
        .metrics
        .consumer_up
        .with_label_values(&[&shared.name]);
    loop {
        let s = shared.clone();
        let outcome = tokio::task::spawn_blocking(move || refresh(&s)).await;
        let replaying = match outcome {
            Ok(Ok(replaying)) => {
                up.set(1);
                shared.status.reachable(replaying);
                replaying
            }
            Ok(Err(e)) => {
                up.set(0);
                fail(&shared, "broker");
                tracing::warn!(consumer = %shared.name, error = %e, "kafka unreachable; retrying");
                shared.status.set("broker_unreachable", Some(e.to_string()));
                false
            }
            Err(_) => return, // runtime shutting down
        };
        if !replaying {
            ready.send_replace(true);
        }
        let pause = if replaying {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = shared.node.shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

fn offset_value(o: Offset) -> Option<i64> {
    match o {
        Offset::Offset(n) => Some(n),
        _ => None,
    }
}

/// One pass of [`watch_partitions`]; returns whether the startup replay is still running.
fn refresh(s: &Shared) -> Result<bool, KafkaError> {
    let mut new = TopicPartitionList::new();
    for topic in &s.cfg.kafka.topics {
        let md = s.consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        let parts = s.parts.lock();
        for t in md.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                if !parts
                    .get(t.name())
                    .is_some_and(|ps| ps.contains_key(&p.id()))
                {
                    new.add_partition(t.name(), p.id());
                }
            }
        }
    }
    if new.count() > 0 {
        assign(s, &new)?;
    }
    let positions = s.consumer.position()?;
    let parts = s.parts.lock().clone();
    let mut total_lag = 0;
    let mut replaying = false;
    let assigned = parts
        .iter()
        .flat_map(|(topic, ps)| ps.iter().map(move |(p, part)| (topic, p, part)));
    for (topic, partition, part) in assigned {
        let (_, high) = s
            .consumer
            .fetch_watermarks(topic, *partition, METADATA_TIMEOUT)?;
        let position = positions
            .find_partition(topic, *partition)
            .and_then(|e| offset_value(e.offset()))
            .unwrap_or(part.start);
        let lag = (high - position).max(0);
        total_lag += lag;
        replaying |= position < part.replay_until;
        s.node
            .metrics
            .consumer_lag
            .with_label_values(&[&s.name, topic, &partition.to_string()])
            .set(lag);
    }
    s.status.set_lag(total_lag);
    Ok(replaying)
}

/// Starts reading new partitions: from the committed offset, or up to `replay_records`
/// before it in chat-event mode; from the earliest record for a group that never committed.
fn assign(s: &Shared, new: &TopicPartitionList) -> Result<(), KafkaError> {
    let committed = s
        .consumer
        .committed_offsets(new.clone(), METADATA_TIMEOUT)?;
    let replay = if matches!(s.mode, Mode::ChatEvents) {
        s.cfg.kafka.chat_event_mode.replay_records as i64
    } else {
        0
    };
    let mut assignment = TopicPartitionList::new();
    let mut parts = Vec::new();
    for e in committed.elements() {
        let (low, high) =
            s.consumer
                .fetch_watermarks(e.topic(), e.partition(), METADATA_TIMEOUT)?;
        let resume = offset_value(e.offset()).unwrap_or(low).clamp(low, high);
        let start = (resume - replay).max(low);
        assignment.add_partition_offset(e.topic(), e.partition(), Offset::Offset(start))?;
        tracing::info!(
            consumer = %s.name, topic = e.topic(), partition = e.partition(),
            committed = resume, start, "assigned partition"
        );
        parts.push((
            e.topic().to_owned(),
            e.partition(),
            Part {
                start,
                replay_until: resume,
            },
        ));
    }
    s.consumer.incremental_assign(&assignment)?;
    let mut known = s.parts.lock();
    for (topic, partition, part) in parts {
        known.entry(topic).or_default().insert(partition, part);
    }
    Ok(())
}
