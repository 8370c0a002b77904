//! Partition assignment and replay: every partition of the consumer's topics (with the Redis
//! engine, its share among the live nodes of its group, [`owner`]), found and re-checked
//! every second (every 100 ms while replaying), assigned from the group's committed offset, or
//! `replay_records` before it in chat-event mode on the embedded engine; lag for metrics.

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

/// The nodes reading this consumer's group now, this one included, sorted: the cluster's
/// live nodes that announce the group.
fn members(s: &Shared) -> Vec<String> {
    let group = &s.cfg.kafka.consumer_group;
    let mut members: Vec<String> = s
        .node
        .cluster
        .others()
        .into_iter()
        .filter(|n| n.kafka_groups.contains(group))
        .map(|n| n.uid)
        .chain([s.node.uid.clone()])
        .collect();
    members.sort();
    members.dedup();
    members
}

/// The member that reads a partition: partitions dealt round the sorted members, each
/// topic starting at a member of its own, so every member reads as many as any other (a
/// hash would leave one of three nodes idle one time in ten with six partitions). A member
/// joining or leaving moves most partitions; while views differ, a partition read by two
/// nodes is published once and one read by none waits a heartbeat.
pub(super) fn owner<'a>(members: &'a [String], topic: &str, partition: i32) -> &'a str {
    if members.is_empty() {
        return "";
    }
    let start = crate::placement::fnv1a(topic.as_bytes()) as usize;
    let i = start.wrapping_add(partition.max(0) as usize) % members.len();
    &members[i]
}

/// One pass of [`watch_partitions`]; returns whether the startup replay is still running.
fn refresh(s: &Shared) -> Result<bool, KafkaError> {
    let members = s.shared_group.then(|| members(s));
    let mut new = TopicPartitionList::new();
    let mut gone = TopicPartitionList::new();
    for topic in &s.cfg.kafka.topics {
        let md = s.consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        let parts = s.parts.lock();
        for t in md.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                let held = parts
                    .get(t.name())
                    .is_some_and(|ps| ps.contains_key(&p.id()));
                let wanted = members
                    .as_ref()
                    .is_none_or(|m| owner(m, t.name(), p.id()) == s.node.uid);
                if wanted && !held {
                    new.add_partition(t.name(), p.id());
                } else if held && !wanted {
                    gone.add_partition(t.name(), p.id());
                }
            }
        }
    }
    if gone.count() > 0 {
        unassign(s, &gone)?;
    }
    if new.count() > 0 {
        assign(s, &new)?;
    }
    let positions = s.consumer.position()?;
    let parts = s.parts.lock().clone();
    s.node
        .metrics
        .consumer_partitions
        .with_label_values(&[&s.name])
        .set(parts.values().map(|ps| ps.len() as i64).sum());
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

/// Stops reading partitions another node owns now. What this node published of them stays
/// published; the new owner starts from the committed offset and drops what it re-reads.
fn unassign(s: &Shared, gone: &TopicPartitionList) -> Result<(), KafkaError> {
    s.consumer.incremental_unassign(gone)?;
    let mut known = s.parts.lock();
    for e in gone.elements() {
        if let Some(ps) = known.get_mut(e.topic()) {
            ps.remove(&e.partition());
        }
        s.node
            .metrics
            .consumer_lag
            .with_label_values(&[&s.name, e.topic(), &e.partition().to_string()])
            .set(0);
        tracing::info!(
            consumer = %s.name, topic = e.topic(), partition = e.partition(),
            "partition handed to another node"
        );
    }
    Ok(())
}

/// Starts reading new partitions: from the committed offset, or up to `replay_records`
/// before it in chat-event mode; from the earliest record for a group that never committed.
fn assign(s: &Shared, new: &TopicPartitionList) -> Result<(), KafkaError> {
    let committed = s
        .consumer
        .committed_offsets(new.clone(), METADATA_TIMEOUT)?;
    let replay = if matches!(s.mode, Mode::ChatEvents) && !s.shared_group {
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

#[cfg(test)]
mod tests {
    use super::owner;

    #[test]
    fn partitions_are_dealt_evenly_and_every_member_agrees() {
        let members: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut counts = std::collections::BTreeMap::new();
        for p in 0..6 {
            *counts.entry(owner(&members, "chat", p)).or_insert(0) += 1;
        }
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        // One member gone: the other two read everything, three each.
        let two = &members[..2];
        let mut counts = std::collections::BTreeMap::new();
        for p in 0..6 {
            *counts.entry(owner(two, "chat", p)).or_insert(0) += 1;
        }
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![3, 3]);
        assert_eq!(owner(&[], "chat", 0), "");
    }
}
