//! The thumbnail task: an image attachment fetched, decoded under its pixel bound on the
//! blocking pool, and a metadata-free JPEG thumbnail stored beside it (`<key>.thumb.jpg`).

use std::time::Duration;

use chorus_protocol::event::Thumbnail;
use chorus_runtime::backoff::{Aborted, Backoff};
use object_store::path::Path as Key;
use object_store::ObjectStoreExt;
use rdkafka::message::OwnedMessage;
use tokio_util::sync::CancellationToken;

use super::Refused;
use crate::images::thumbnail::{self, Bounds};
use crate::job::Job;
use crate::worker::{now_ms, Worker};

impl Worker {
    /// An image job: the thumbnail stored beside the original (`<key>.thumb.jpg`), then
    /// `attachment.processed`; or the record dead-lettered and `attachment.failed`.
    pub(crate) async fn thumbnail(
        &self,
        record: &OwnedMessage,
        job: &Job,
        bounds: Bounds,
        stop: &CancellationToken,
    ) -> Result<(), Aborted> {
        let metrics = &self.status.metrics;
        tracing::info!(chat = %job.chat_id, message_id = %job.message_id, key = %job.key,
            "thumbnailing");
        let made = match self.fetch(job, stop).await? {
            Ok(bytes) => tokio::task::spawn_blocking(move || thumbnail::make(&bytes, bounds))
                .await
                .map_err(|e| Refused::Engine(format!("the thumbnail task failed: {e}")))
                .and_then(|r| r.map_err(Refused::from)),
            Err(refused) => Err(refused),
        };
        let thumb = match made {
            Ok(t) => t,
            Err(refused) => {
                let reason = refused.to_string();
                self.dead_letter(record, &reason, stop).await?;
                self.produce(&job.image_failed(reason, now_ms()), stop)
                    .await?;
                metrics.jobs.with_label_values(&["image_failed"]).inc();
                return Ok(());
            }
        };
        let key = format!("{}.thumb.jpg", job.key);
        let size = thumb.jpeg.len() as u64;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let payload = object_store::PutPayload::from(thumb.jpeg);
        loop {
            match self
                .store
                .put(&Key::from(key.as_str()), payload.clone())
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    self.status.trouble(Some(format!("object store: {e}")));
                    metrics.retries.with_label_values(&["store"]).inc();
                    tracing::warn!(key = %key, error = %e, "storing the thumbnail");
                    backoff.wait(stop).await?;
                }
            }
        }
        let event = job.processed(
            Thumbnail {
                key,
                mime: "image/jpeg".into(),
                width: thumb.width,
                height: thumb.height,
                size,
            },
            now_ms(),
        );
        self.produce(&event, stop).await?;
        metrics.jobs.with_label_values(&["thumbnailed"]).inc();
        Ok(())
    }
}
