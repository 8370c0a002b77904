//! The outbox relay against real PostgreSQL and tansu: a relay that dies between commit and
//! publish, or between publish and delete, loses nothing and keeps the order; two relays at
//! once never publish a row twice.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use chorus_api::outbox;
use chorus_protocol::state::StateEvent;
use common::tansu::{unique, Tansu};
use common::TestApi;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use serde_json::json;

async fn api_on(t: &Tansu, state_topic: &str) -> TestApi {
    let (brokers, topic, messages) = (t.brokers(), state_topic.to_owned(), unique("chat-events"));
    t.create_topic(&messages, 1).await;
    TestApi::start(move |c| {
        c.kafka.brokers = brokers;
        c.kafka.state_topic = topic;
        c.kafka.messages_topic = messages;
        c.outbox.batch = 7;
    })
    .await
}

/// Reads `topic` from the start until `n` records came, or 30 s passed.
async fn read_all(t: &Tansu, topic: &str, n: usize) -> Vec<StateEvent> {
    let consumer: StreamConsumer = t
        .config()
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while out.len() < n {
        let m = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records on {topic}", out.len()))
            .unwrap();
        out.push(StateEvent::decode(m.payload().unwrap()).unwrap());
    }
    out
}

/// Membership changes that commit outbox rows; returns how many state events they wrote.
async fn changes(api: &TestApi, rounds: usize) -> usize {
    let (_, ann) = api.user(&unique("ann").replace('-', "_")[..20]).await;
    let (bob_id, _) = api.user(&unique("bob").replace('-', "_")[..20]).await;
    let (s, b) = api
        .req("POST", "/chats", Some(&ann), Some(json!({"title": "t"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    for _ in 0..rounds {
        let (s, _) = api
            .req(
                "POST",
                &format!("/chats/{id}/members"),
                Some(&ann),
                Some(json!({"user_id": bob_id})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, _) = api
            .req(
                "DELETE",
                &format!("/chats/{id}/members/{bob_id}"),
                Some(&ann),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    1 + 2 * rounds
}

/// Runs relay rounds until the outbox is empty (at most 30 s); returns the rows it published.
async fn drain(s: &chorus_api::app::AppState) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut published = 0;
    loop {
        published += outbox::relay_once(s).await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&s.db)
            .await
            .unwrap();
        if left == 0 {
            return published;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} rows left in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn state_rows(api: &TestApi, topic: &str) -> Vec<StateEvent> {
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE topic = $1 ORDER BY id")
            .bind(topic)
            .fetch_all(&api.state.db)
            .await
            .unwrap();
    rows.iter()
        .map(|p| StateEvent::decode(p).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_killed_between_commit_and_publish_or_publish_and_delete_loses_nothing() {
    let t = Tansu::start().await;
    let topic = unique("chat-state");
    t.create_topic(&topic, 1).await;
    let api = api_on(&t, &topic).await;
    // No relay runs while the changes commit: as if it died right after each commit.
    let n = changes(&api, 6).await;
    let committed = state_rows(&api, &topic).await;
    assert_eq!(committed.len(), n);
    let first_batch: Vec<String> =
        sqlx::query_scalar("SELECT topic FROM outbox ORDER BY id LIMIT 7")
            .fetch_all(&api.state.db)
            .await
            .unwrap();
    let republished = first_batch.iter().filter(|t| **t == topic).count();
    assert!(republished >= 3, "{first_batch:?}");

    // A relay publishes the first batch, then dies before deleting it (its transaction never
    // commits; PostgreSQL rolls back a dead connection's transaction the same way).
    {
        let mut tx = api.state.db.begin().await.unwrap();
        let published = outbox::publish_head(&api.state, &mut tx).await.unwrap();
        assert_eq!(published.len(), 7);
        drop(tx);
    }
    // The next relay (a restarted process) publishes everything left. (The dropped
    // transaction's rollback, and with it the relay lock, is released in the background.)
    drain(&api.state).await;

    // On the topic: the first batch twice (at least once), then everything in commit order.
    let events = read_all(&t, &topic, n + republished).await;
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let want: Vec<&str> = committed.iter().map(|e| e.event_id.as_str()).collect();
    let mut deduped: Vec<&str> = Vec::new();
    for id in &ids {
        if !deduped.contains(id) {
            deduped.push(id);
        }
    }
    assert_eq!(
        deduped, want,
        "every event, first occurrences in commit order"
    );
    assert_eq!(ids.len(), n + republished);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_relays_at_once_publish_each_row_once_in_order() {
    let t = Tansu::start().await;
    let topic = unique("chat-state");
    t.create_topic(&topic, 1).await;
    let api = api_on(&t, &topic).await;
    let n = changes(&api, 15).await;
    let committed = state_rows(&api, &topic).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&api.state.db)
        .await
        .unwrap();
    // A second API process's state: its own pool, producer and relay.
    let other = chorus_api::app::AppState::connect((*api.state.config).clone())
        .await
        .unwrap();
    let (a, b) = tokio::join!(drain(&api.state), drain(&other));
    assert_eq!(
        a + b,
        rows as usize,
        "every row published by exactly one relay ({a} + {b})"
    );
    let events = read_all(&t, &topic, n).await;
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let want: Vec<&str> = committed.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, want);
    api.stop().await;
}
