//! `chorus-sink`: persists the chat topic into DynamoDB's `messages` table.
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | defaults, TOML file, `CHORUS_SINK__*` overrides, validation |
//! | [`fold`] | one write per item per flush |
//! | [`writer`] | a flush into BatchWriteItem/UpdateItem calls, retried with backoff |
//! | [`consumer`] | the Kafka consumer group, backpressure, rebalances, lag |
//! | [`pipeline`] | gather → write → dead-letter → commit |
//! | [`status`], [`metrics`] | `/health`, Prometheus |
//!
//! The table's item model and store are `chorus-history`'s (the API reads through the same
//! crate); logging, `/health` serving, backoff, group liveness and the dead-letter writer are
//! `chorus-runtime`'s.

pub mod config;
pub mod consumer;
pub mod fold;
pub mod metrics;
pub mod pipeline;
pub mod status;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use chorus_history::{Failure, Store};
use chorus_runtime::backoff::{Aborted, Backoff};
use chorus_runtime::kafka::{dlq, group};
use chorus_runtime::server;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::status::Status;
use crate::writer::Writer;

/// Runs the sink until `shutdown` fires, then flushes and commits what it holds (for at most
/// `shutdown_timeout_ms`). `listener` serves `/health` and `/metrics`.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let status = Arc::new(Status::new(Arc::new(Metrics::new())));
    let stop_http = CancellationToken::new();
    let http = server::spawn(listener, status.clone(), stop_http.clone());
    // `abort` ends retries: at the end of the shutdown grace, not at its start.
    let abort = CancellationToken::new();
    {
        let (shutdown, abort, grace) = (shutdown.clone(), abort.clone(), config.shutdown_timeout());
        let status = status.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            status.stopping();
            tokio::time::sleep(grace).await;
            abort.cancel();
        });
    }
    let store = Arc::new(Store::new(&config.dynamodb).await);
    if prepare_table(&store, &config, &status, &abort)
        .await
        .is_ok()
    {
        status.started();
        serve(config, store, status, shutdown, abort).await?;
    }
    stop_http.cancel();
    http.await??;
    Ok(())
}

async fn serve(
    config: Config,
    store: Arc<Store>,
    status: Arc<Status>,
    shutdown: CancellationToken,
    abort: CancellationToken,
) -> anyhow::Result<()> {
    let consumer = consumer::create(&config, status.clone())?;
    let dead_letters = dlq::DeadLetters::new(&consumer::client_config(&config), "chorus-sink")?;
    let (tx, rx) = tokio::sync::mpsc::channel(config.batch.max_pending);
    let reader = tokio::spawn(consumer::read(
        consumer.clone(),
        tx,
        status.clone(),
        shutdown.clone(),
    ));
    let lag = {
        let status = status.clone();
        tokio::spawn(group::watch(
            consumer.clone(),
            config.kafka.topic.clone(),
            group::EVERY,
            Duration::from_millis(config.kafka.rejoin_after_ms),
            status.group.clone(),
            shutdown.clone(),
            move |looked| status.lag_seen(looked),
        ))
    };
    let probe = tokio::spawn(probe(
        store.clone(),
        config.dynamodb.create_table,
        status.clone(),
        shutdown.clone(),
    ));
    tracing::info!(topic = %config.kafka.topic, group = %config.kafka.group,
        table = %config.dynamodb.table, "sink running");
    Pipeline {
        consumer: consumer.clone(),
        writer: Writer {
            store,
            status,
            batch: config.batch.clone(),
            abort,
        },
        dead_letters,
        dead_letter_topic: config.dead_letter_topic(),
        topic: config.kafka.topic.clone(),
    }
    .run(rx)
    .await;
    // The writer ends early only when it gave up at shutdown; the reader may still wait.
    shutdown.cancel();
    reader.await?;
    lag.await?;
    probe.await?;
    Ok(())
}

/// Waits until the table exists, creating it if allowed; retried while DynamoDB is down.
async fn prepare_table(
    store: &Store,
    config: &Config,
    status: &Status,
    abort: &CancellationToken,
) -> Result<(), Aborted> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut asked = false;
    loop {
        let outcome = match store.table_ready().await {
            Ok(true) => {
                status.dynamodb_ok();
                return Ok(());
            }
            Ok(false) if config.dynamodb.create_table && !asked => {
                asked = true;
                store.create_table().await
            }
            Ok(false) if !config.dynamodb.create_table => Err(Failure::Unavailable(format!(
                "table {} does not exist and dynamodb.create_table is off",
                config.dynamodb.table
            ))),
            Ok(false) => Ok(()), // being created: poll again
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                status.dynamodb_ok();
                // aws-sdk's own waiter polls every 20 s; a new table is active in well under one.
                tokio::select! {
                    _ = abort.cancelled() => return Err(Aborted),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            Err(Failure::Unavailable(e) | Failure::Throttled(e) | Failure::Rejected(e)) => {
                status.dynamodb_down(&e);
                backoff.wait(abort).await?;
            }
        }
    }
}

/// Checks DynamoDB every two seconds so `/health` tells the truth while nothing is written,
/// and recreates the table if it vanished (a DynamoDB Local restarted in memory).
async fn probe(store: Arc<Store>, create: bool, status: Arc<Status>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        match store.table_ready().await {
            Ok(true) => status.dynamodb_ok(),
            Ok(false) => {
                status.dynamodb_down(&format!("table {} is missing", store.table()));
                if create {
                    if let Err(e) = store.create_table().await {
                        tracing::warn!(error = ?e, "recreating the table");
                    }
                }
            }
            Err(Failure::Unavailable(e) | Failure::Throttled(e) | Failure::Rejected(e)) => {
                status.dynamodb_down(&e)
            }
        }
    }
}
