//! `chorus-transcriber`: voice messages to text with a real Whisper model, and image
//! thumbnails. A consumer group on the audio topic (each voice message's transcript goes back
//! into its chat's stream) and a second one beside it on the image topic (thumbnails): slow
//! CPU work, kept off the text path in one service.
//!
//! | module | concept |
//! |---|---|
//! | [`model`] | `prepare-model`: CTranslate2's Whisper to whisper.cpp's file |
//! | [`engine`] | the model through whisper-rs |
//! | [`images`] | thumbnails: bounded decode, EXIF orientation, no metadata |
//! | [`job`] | an audio- or image-topic record, and the events a job ends in |
//! | [`worker`] | the job loop: read → the task → produce → commit; dead letters, retries |
//! | [`task`] | the two tasks a worker runs: [`task::transcribe`] and [`task::thumbnail`] |
//! | [`config`], [`metrics`], [`status`] | config, Prometheus, `/health` |
//!
//! Voice decoding and the object store are `chorus-media`'s (the API uses them too); logging,
//! `/health` serving, backoff, group liveness and dead letters are `chorus-runtime`'s.

pub mod config;
pub mod engine;
pub mod images;
pub mod job;
pub mod metrics;
pub mod model;
pub mod status;
pub mod task;
pub mod worker;

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::Engine;
use crate::images::thumbnail::Bounds;
use crate::status::Status;
use crate::task::Task;
use crate::worker::Worker;

/// Loads the model, then transcribes until `shutdown`; `listener` serves `/health` and
/// `/metrics`. The model is loaded before the consumer joins its group, so a worker never
/// holds partitions it cannot serve.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let status = Arc::new(Status::default());
    let stop_http = CancellationToken::new();
    let http = chorus_runtime::server::spawn(listener, status.clone(), stop_http.clone());
    let engine = {
        let (path, threads, padding) = (
            config.model.path.clone(),
            config.model.threads,
            config.ctx_padding_ms(),
        );
        tokio::task::spawn_blocking(move || Engine::load(&path, threads, padding))
            .await
            .context("loading the model")??
    };
    let store = chorus_media::store::Blobs::open(&config.media.path, &config.media.s3)?.store;
    let transcriber = Worker::new(
        config.clone(),
        store.clone(),
        Task::Transcribe(Arc::new(engine)),
        status.clone(),
    )?;
    let thumbnailer = if config.kafka.image_topic.is_empty() {
        None
    } else {
        let bounds = Bounds {
            max_pixels: config.media.max_image_pixels,
            max_side: config.media.thumbnail_side,
        };
        Some(Worker::new(
            config,
            store,
            Task::Thumbnail(bounds),
            status.clone(),
        )?)
    };
    {
        let (shutdown, status) = (shutdown.clone(), status.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            status.stopping();
        });
    }
    let images = thumbnailer.map(|w| tokio::spawn(w.run(shutdown.clone())));
    transcriber.run(shutdown).await;
    if let Some(images) = images {
        images.await?;
    }
    stop_http.cancel();
    http.await??;
    Ok(())
}

/// `chorus-transcriber serve` once its config is loaded: logs, the runtime, the HTTP
/// listener, then [`run`] until SIGTERM or SIGINT.
pub fn serve(config: Config) -> anyhow::Result<()> {
    let (log, address) = (config.log.clone(), config.http.address.clone());
    chorus_runtime::process::serve(
        "chorus_transcriber",
        &log,
        &address,
        "shutting down",
        |listener, shutdown| run(config, listener, shutdown),
    )
}
