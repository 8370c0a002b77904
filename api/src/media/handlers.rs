//! The attachment handlers: image and voice uploads, and members-only reads with HTTP Range.

use axum::body::Body as HttpBody;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chorus_protocol::event::{Attachment, AttachmentKind};
use object_store::path::Path as Key;
use object_store::ObjectStoreExt;

use chorus_media::audio;

use crate::auth::access::User;
use crate::body::Form;
use crate::chats::membership;
use crate::error::ApiError;
use crate::extract::{chat_id, ChatId};
use crate::messages::send::{idempotency_key, publish, sent};
use crate::state::AppState;

/// The image formats taken, by content: (MIME type, extension).
fn image_kind(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    match imagesize::image_type(bytes).ok()? {
        imagesize::ImageType::Jpeg => Some(("image/jpeg", "jpg")),
        imagesize::ImageType::Png => Some(("image/png", "png")),
        imagesize::ImageType::Webp => Some(("image/webp", "webp")),
        imagesize::ImageType::Gif => Some(("image/gif", "gif")),
        _ => None,
    }
}

fn mime_of(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("jpg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("wav") => "audio/wav",
        Some("flac") => "audio/flac",
        Some("mp3") => "audio/mpeg",
        Some("ogg") => "audio/ogg",
        Some("webm") => "audio/webm",
        _ => "application/octet-stream",
    }
}

pub async fn upload_image(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
    headers: HeaderMap,
    Form(mut form): Form,
) -> Result<Response, ApiError> {
    let Upload {
        chat,
        key,
        file,
        text,
    } = Upload::read(&s, me, chat, &headers, &mut form).await?;
    too_large(&file, s.config.media.max_image_bytes, "image")?;
    let (mime, ext) =
        image_kind(&file).ok_or(ApiError::UnsupportedMedia("images: JPEG, PNG, WebP or GIF"))?;
    let size = imagesize::blob_size(&file)
        .map_err(|e| ApiError::Validation(format!("unreadable image header: {e}")))?;
    let pixels = size.width as u64 * size.height as u64;
    if pixels > s.config.media.max_image_pixels {
        return Err(ApiError::TooLarge(format!(
            "image of {}×{} pixels, over {} pixels",
            size.width, size.height, s.config.media.max_image_pixels
        )));
    }
    let attachment = Attachment {
        kind: AttachmentKind::Image,
        key: String::new(),
        mime: mime.into(),
        size: file.len() as u64,
        duration_ms: None,
        width: u32::try_from(size.width).ok(),
        height: u32::try_from(size.height).ok(),
    };
    store_and_send(&s, chat, me, file, ext, attachment, text, key).await
}

pub async fn upload_voice(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
    headers: HeaderMap,
    Form(mut form): Form,
) -> Result<Response, ApiError> {
    let Upload {
        chat,
        key,
        file,
        text,
    } = Upload::read(&s, me, chat, &headers, &mut form).await?;
    too_large(&file, s.config.media.max_voice_bytes, "voice message")?;
    let max_seconds = s.config.media.max_voice_seconds;
    let bytes = file.to_vec();
    let decoded = tokio::task::spawn_blocking(move || audio::decode(bytes, max_seconds))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("decoding task: {e}")))?
        .map_err(|e| match e {
            audio::AudioError::Unsupported(_) => ApiError::UnsupportedMedia(
                "voice: WAV, FLAC, MP3, OGG (Vorbis or Opus) or WebM (Opus)",
            ),
            audio::AudioError::Corrupt(why) => {
                ApiError::Unprocessable(format!("the audio does not decode: {why}"))
            }
            e @ audio::AudioError::TooLong { .. } => ApiError::TooLarge(e.to_string()),
        })?;
    let attachment = Attachment {
        kind: AttachmentKind::Voice,
        key: String::new(),
        mime: decoded.container.mime().into(),
        size: file.len() as u64,
        duration_ms: Some(decoded.duration_ms()),
        width: None,
        height: None,
    };
    let ext = decoded.container.extension();
    store_and_send(&s, chat, me, file, ext, attachment, text, key).await
}

/// Stores the blob at `chats/<chat>/<message id>.<ext>`, then sends the message.
#[allow(clippy::too_many_arguments)]
async fn store_and_send(
    s: &AppState,
    chat: i64,
    me: i64,
    file: bytes::Bytes,
    ext: &str,
    mut attachment: Attachment,
    text: Option<String>,
    key: Option<String>,
) -> Result<Response, ApiError> {
    let message_id = s.ulid();
    let object = format!("chats/{chat}/{message_id}.{ext}");
    s.media
        .store
        .put(&Key::from(object.as_str()), file.into())
        .await
        .map_err(|e| {
            if crate::error::storage_full(&e) {
                tracing::warn!(%object, error = %e, "media store full; upload refused");
                return ApiError::InsufficientStorage(
                    "the media store is full; nothing was sent, retry later".into(),
                );
            }
            ApiError::Internal(anyhow::anyhow!("storing {object}: {e}"))
        })?;
    attachment.key = object;
    let outcome = publish(s, chat, me, &message_id, text, Some(attachment), key).await?;
    // On a replay the blob just stored is an orphan: the first attempt's is the one in use.
    Ok(sent(chat, &message_id, &outcome))
}

/// An upload's request, checked as a send is (rate limit, idempotency key, membership), and
/// its multipart form: `file`, and an optional caption in `text`.
struct Upload {
    chat: i64,
    key: Option<String>,
    file: bytes::Bytes,
    text: Option<String>,
}

impl Upload {
    async fn read(
        s: &AppState,
        me: i64,
        chat: i64,
        headers: &HeaderMap,
        form: &mut Multipart,
    ) -> Result<Upload, ApiError> {
        s.limits.send.check(&me.to_string()).map_err(|wait| {
            s.metrics.rate_limited.with_label_values(&["send"]).inc();
            ApiError::RateLimited(wait)
        })?;
        let key = idempotency_key(headers)?;
        membership::require(s, chat, me).await?;
        let (file, text) = read_form(s, form).await?;
        Ok(Upload {
            chat,
            key,
            file,
            text,
        })
    }
}

/// 413 for a file over `max` bytes.
fn too_large(file: &[u8], max: usize, what: &str) -> Result<(), ApiError> {
    if file.len() > max {
        return Err(ApiError::TooLarge(format!("{what} over {max} bytes")));
    }
    Ok(())
}

async fn read_form(
    s: &AppState,
    form: &mut Multipart,
) -> Result<(bytes::Bytes, Option<String>), ApiError> {
    let mut file: Option<bytes::Bytes> = None;
    let mut text: Option<String> = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::Validation(format!("multipart: {e}")))?
    {
        match field.name() {
            Some("file") => {
                file = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|e| ApiError::Validation(format!("file: {e}")))?,
                )
            }
            Some("text") => {
                let t = field
                    .text()
                    .await
                    .map_err(|e| ApiError::Validation(format!("text: {e}")))?;
                // An empty caption is no caption; any other is checked as a message is.
                if !t.trim().is_empty() {
                    let t =
                        crate::text::body(&t, s.config.limits.max_text_chars).ok_or_else(|| {
                            ApiError::Validation(
                            "text: too long, or control characters other than newlines and tabs"
                                .into(),
                        )
                        })?;
                    text = Some(t);
                }
            }
            other => {
                return Err(ApiError::Validation(format!(
                    "unexpected field {other:?}: file and text only"
                )))
            }
        }
    }
    let file = file.ok_or_else(|| ApiError::Validation("the file field is missing".into()))?;
    Ok((file, text))
}

/// A single byte range of a `len`-byte object, or `Err(())` when unsatisfiable.
fn range(spec: &str, len: u64) -> Result<std::ops::Range<u64>, ()> {
    let spec = spec.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') || len == 0 {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let r = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            len.saturating_sub(n)..len
        }
        (a, "") => a.parse().map_err(|_| ())?..len,
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().map_err(|_| ())?, b.parse().map_err(|_| ())?);
            a..(b.saturating_add(1)).min(len)
        }
    };
    if r.start >= r.end || r.start >= len {
        return Err(());
    }
    Ok(r)
}

pub async fn read(
    State(s): State<AppState>,
    User(me): User,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // chats/<chat>/<file>: the chat decides who may read.
    let mut parts = key.splitn(3, '/');
    let (Some("chats"), Some(chat), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ApiError::NotFound);
    };
    if file.is_empty() || file.contains('/') || file.starts_with('.') {
        return Err(ApiError::NotFound);
    }
    let chat = chat_id(chat)?;
    membership::require(&s, chat, me).await?;
    // On S3 the client fetches the blob from S3 itself, Range and all: a redirect to a URL
    // signed for this key, valid `media.s3.presign_secs`.
    if let Some(signed) = s.media.presigned_get(&key).await {
        let (url, expires_in) =
            signed.map_err(|e| ApiError::Internal(anyhow::anyhow!("presigning {key}: {e}")))?;
        let location = HeaderValue::from_str(&url)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("presigned url: {e}")))?;
        let body = serde_json::json!({ "url": url, "expires_in": expires_in });
        let mut r = (StatusCode::TEMPORARY_REDIRECT, axum::Json(body)).into_response();
        r.headers_mut().insert(header::LOCATION, location);
        return Ok(r);
    }
    let location = Key::from(key.as_str());
    let meta = match s.media.store.head(&location).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => return Err(ApiError::NotFound),
        Err(e) => return Err(ApiError::Internal(anyhow::anyhow!("media head: {e}"))),
    };
    let len = meta.size;
    let wanted = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, span) = match wanted {
        None => (StatusCode::OK, 0..len),
        Some(spec) => match range(spec, len) {
            Ok(r) => (StatusCode::PARTIAL_CONTENT, r),
            Err(()) => {
                let mut r = ApiError::RangeNotSatisfiable.into_response();
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{len}"))
                        .expect("invariant: ASCII digits"),
                );
                return Ok(r);
            }
        },
    };
    let bytes = s
        .media
        .store
        .get_range(&location, span.clone())
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("media read: {e}")))?;
    let mut r = (status, HttpBody::from(bytes)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(mime_of(&key)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {}-{}/{len}", span.start, span.end - 1))
                .expect("invariant: ASCII digits"),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges() {
        assert_eq!(range("bytes=0-9", 100), Ok(0..10));
        assert_eq!(range("bytes=90-", 100), Ok(90..100));
        assert_eq!(range("bytes=-10", 100), Ok(90..100));
        assert_eq!(range("bytes=95-200", 100), Ok(95..100));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=5-2", 100), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 100), Err(()));
        assert_eq!(range("items=0-1", 100), Err(()));
    }
}
