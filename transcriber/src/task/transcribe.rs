//! The transcription task: a voice clip fetched, decoded and resampled, then heard by
//! Whisper on the blocking pool; its transcript (or why it was refused) goes back into the
//! chat as `message.transcribed` (`message.transcription_failed`).

use std::sync::Arc;
use std::time::Instant;

use chorus_media::audio;
use chorus_runtime::backoff::Aborted;
use rdkafka::message::{Message, OwnedMessage};
use tokio_util::sync::CancellationToken;

use super::Refused;
use crate::engine::{Engine, Transcript};
use crate::job::Job;
use crate::worker::{now_ms, Worker};

impl Worker {
    /// A voice job: the transcript produced to the chat topic, or the record dead-lettered
    /// and `message.transcription_failed`.
    pub(crate) async fn transcribe(
        &self,
        record: &OwnedMessage,
        job: &Job,
        engine: Arc<Engine>,
        stop: &CancellationToken,
    ) -> Result<(), Aborted> {
        let metrics = &self.status.metrics;
        tracing::info!(chat = %job.chat_id, message_id = %job.message_id, key = %job.key,
            partition = record.partition(), offset = record.offset(), "transcribing");
        let outcome = match self.fetch(job, stop).await? {
            Ok(bytes) => self.hear(engine, bytes).await,
            Err(refused) => Err(refused),
        };
        let now = now_ms();
        match outcome {
            Ok(t) => {
                self.produce(&job.transcribed(t.text, t.language, now), stop)
                    .await?;
                metrics.jobs.with_label_values(&["transcribed"]).inc();
                if let Some(produced) = record.timestamp().to_millis() {
                    let seconds = (now_ms() - produced).max(0) as f64 / 1000.0;
                    metrics.job_latency_seconds.observe(seconds);
                }
                tracing::info!(chat = %job.chat_id, message_id = %job.message_id, "transcribed");
            }
            Err(refused) => {
                let reason = refused.to_string();
                self.dead_letter(record, &reason, stop).await?;
                self.produce(&job.failed(reason, now), stop).await?;
                metrics.jobs.with_label_values(&["failed"]).inc();
            }
        }
        Ok(())
    }

    /// Decodes and resamples the clip and runs Whisper on it, on the blocking pool.
    async fn hear(&self, engine: Arc<Engine>, bytes: Vec<u8>) -> Result<Transcript, Refused> {
        let max_seconds = self.config.media.max_voice_seconds;
        let metrics = &self.status.metrics;
        let (transcript, clip_seconds, took) = tokio::task::spawn_blocking(move || {
            let decoded = audio::decode(bytes, max_seconds)?;
            let samples = audio::to_whisper_rate(&decoded.samples, decoded.sample_rate);
            let start = Instant::now();
            let transcript = engine
                .transcribe(&samples)
                .map_err(|e| Refused::Engine(e.to_string()))?;
            let clip_seconds = samples.len() as f64 / f64::from(audio::resample::WHISPER_RATE);
            Ok::<_, Refused>((transcript, clip_seconds, start.elapsed().as_secs_f64()))
        })
        .await
        .map_err(|e| Refused::Engine(format!("the transcription task failed: {e}")))??;
        metrics.inference_seconds.observe(took);
        if took > 0.0 {
            metrics.realtime_factor.observe(clip_seconds / took);
        }
        Ok(transcript)
    }
}
