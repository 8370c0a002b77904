//! `chorus-transcriber`: voice messages to text with a real Whisper model, and image
//! thumbnails. A consumer group on the audio topic (each voice message's transcript goes back
//! into its chat's stream) and a second one beside it on the image topic (thumbnails): slow
//! CPU work, kept off the text path in one service.
//!
//! | module | concept |
//! |---|---|
//! | [`audio`] | sniffing, decoding and resampling voice clips (also used by the API) |
//! | [`store`] | the object store uploads live in (also used by the API) |
//! | [`model`] | `prepare-model`: CTranslate2's Whisper to whisper.cpp's file |
//! | [`engine`] | the model through whisper-rs |
//! | [`images`] | thumbnails: bounded decode, EXIF orientation, no metadata |
//! | [`job`] | an audio- or image-topic record, and the events a job ends in |
//! | [`worker`] | fetch → decode → transcribe (or thumbnail) → produce → commit |
//! | [`config`], [`metrics`], [`status`] | config, Prometheus, `/health` |
//! | [`wer`] | word error rate, for tests and benchmarks |

pub mod audio;
pub mod model;
pub mod store;
pub mod wer;

#[cfg(feature = "whisper")]
pub mod config;
#[cfg(feature = "whisper")]
pub mod engine;
#[cfg(feature = "whisper")]
pub mod images;
#[cfg(feature = "whisper")]
pub mod job;
#[cfg(feature = "whisper")]
pub mod metrics;
#[cfg(feature = "whisper")]
pub mod status;
#[cfg(feature = "whisper")]
pub mod worker;

#[cfg(feature = "whisper")]
pub use service::run;

#[cfg(feature = "whisper")]
mod service {
    use std::sync::Arc;

    use anyhow::Context;
    use tokio_util::sync::CancellationToken;

    use crate::config::Config;
    use crate::engine::Engine;
    use crate::images::thumbnail::Bounds;
    use crate::status::Status;
    use crate::worker::{Task, Worker};

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
        let http = {
            let stop = stop_http.clone();
            let app = chorus_sink::server::app(status.clone());
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            })
        };
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
        let store = crate::store::Blobs::open(&config.media.path, &config.media.s3)?.store;
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
}
