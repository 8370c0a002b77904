//! The state-event consumer: applies each chat state event's side effects outside
//! PostgreSQL, idempotently, so at-least-once delivery is harmless.
//!
//! - Drops the membership cache entries of the users the event names (this replica's
//!   request already did once; this reaches what other readers cached since).
//! - A removed member (or every member of a deleted chat) is unsubscribed from every channel
//!   of the chat on the hub through its server API, on every node. The removal's request
//!   already did (`chats::cutoff`) before it answered: this is its retry path.
//!
//! Offsets are committed only after an event's effects succeeded; a hub or Redis that is down
//! is retried with backoff (reported in `/health`), never skipped. A record that is not a
//! state event is logged and skipped: no retry can fix it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chorus_protocol::state::{StateBody, StateEvent};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use crate::chats::membership;
pub use crate::outbox::reactor_status::ReactorStatus;
use crate::state::AppState;

/// Applies one event's effects.
pub async fn apply(s: &AppState, event: &StateEvent) -> anyhow::Result<()> {
    let Ok(chat) = event.chat_id.parse::<i64>() else {
        anyhow::bail!("chat id {:?} is not a number", event.chat_id);
    };
    let users: Vec<i64> = event
        .affected_users()
        .iter()
        .filter_map(|u| u.parse().ok())
        .collect();
    membership::invalidate(s, chat, &users).await?;
    let removed = match &event.body {
        StateBody::MemberRemoved { user_id } => std::slice::from_ref(user_id),
        StateBody::ChatDeleted { members } => members.as_slice(),
        _ => return Ok(()),
    };
    let channels = chorus_protocol::event::chat_channels(chat);
    s.hub.unsubscribe(removed, &channels).await
}

pub async fn run(s: AppState, status: Arc<ReactorStatus>, shutdown: CancellationToken) {
    let consumer: StreamConsumer = match crate::kafka::consumer_config(&s.config.kafka).create() {
        Ok(c) => c,
        Err(e) => {
            *status.last_error.lock() = Some(format!("kafka consumer: {e}"));
            tracing::error!(error = %e, "state-event consumer not created");
            return;
        }
    };
    if let Err(e) = consumer.subscribe(&[&s.config.kafka.state_topic]) {
        *status.last_error.lock() = Some(format!("subscribe: {e}"));
        tracing::error!(error = %e, "state-event consumer not subscribed");
        return;
    }
    let consumer = Arc::new(consumer);
    tokio::spawn(chorus_runtime::kafka::group::watch(
        consumer.clone(),
        s.config.kafka.state_topic.clone(),
        chorus_runtime::kafka::group::EVERY,
        Duration::from_millis(s.config.kafka.rejoin_after_ms),
        status.group.clone(),
        shutdown.clone(),
        |_| {},
    ));
    status.healthy.store(true, Ordering::Relaxed);
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "state-event consumer");
                *status.last_error.lock() = Some(e.to_string());
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match StateEvent::decode(message.payload().unwrap_or_default()) {
            Ok(event) => {
                let mut failures = 0u32;
                loop {
                    match apply(&s, &event).await {
                        Ok(()) => {
                            s.metrics.state_events.with_label_values(&["applied"]).inc();
                            status.healthy.store(true, Ordering::Relaxed);
                            break;
                        }
                        Err(e) => {
                            failures += 1;
                            s.metrics.state_events.with_label_values(&["failed"]).inc();
                            status.healthy.store(false, Ordering::Relaxed);
                            *status.last_error.lock() = Some(format!("{e:#}"));
                            tracing::warn!(event_id = %event.event_id, error = %format!("{e:#}"), failures, "state event not applied; retrying");
                            let wait =
                                Duration::from_millis((100u64 << failures.min(6)).min(5_000));
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                _ = tokio::time::sleep(wait) => {}
                            }
                        }
                    }
                }
            }
            Err(e) => {
                s.metrics
                    .state_events
                    .with_label_values(&["unparsable"])
                    .inc();
                tracing::error!(partition = message.partition(), offset = message.offset(), error = %e, "skipping a record that is not a state event");
            }
        }
        if let Err(e) = consumer.commit_message(&message, CommitMode::Async) {
            tracing::warn!(error = %e, "state-event offset not committed; it will be applied again");
        }
    }
}
