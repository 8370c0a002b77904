//! The transcriber's config: defaults, an optional TOML file, `CHORUS_TRANSCRIBER__*`
//! overrides, checked before anything starts.

use std::path::{Path, PathBuf};

pub use chorus_runtime::config::{Http, Log};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kafka: Kafka,
    pub model: Model,
    pub media: Media,
    pub http: Http,
    pub log: Log,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kafka: Kafka::default(),
            model: Model::default(),
            media: Media::default(),
            http: Http::at("127.0.0.1:9102"),
            log: Log::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Kafka {
    pub brokers: String,
    /// Voice messages to transcribe: the API queues each one here, apart from the chat topic,
    /// so a backlog of audio never delays text.
    pub audio_topic: String,
    /// Image attachments to thumbnail, queued by the API the same way; empty: no image worker.
    pub image_topic: String,
    /// Where transcripts go: the chat topic the hub delivers from and the sink stores.
    pub messages_topic: String,
    pub group: String,
    /// How long the group waits for a silent worker before giving its partitions to another:
    /// the clips of a worker that died wait this long.
    pub session_timeout_ms: u32,
    /// How long a worker may hold no partition while its group lags before it rejoins the
    /// group (`chorus_runtime::kafka::group`); longer than `session_timeout_ms`.
    pub rejoin_after_ms: u64,
    /// Static group membership (`group.instance.id`; the image worker's is `<id>.images`): a
    /// worker restarted with the same id takes its place at once. Unique per process;
    /// empty: dynamic.
    pub instance_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Model {
    /// whisper.cpp's model file, as `chorus-transcriber prepare-model` writes it.
    pub path: PathBuf,
    /// Threads whisper.cpp uses per clip.
    pub threads: usize,
    /// Encoder margin beyond the clip, in ms; `-1` runs the full 30 s window every time.
    pub ctx_padding_ms: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Media {
    /// The object store's directory: the same one the API writes uploads into.
    pub path: PathBuf,
    /// S3 instead of the directory when `s3.bucket` is set: the API's bucket.
    pub s3: chorus_media::store::S3,
    /// Longer clips are refused (dead-lettered) rather than transcribed.
    pub max_voice_seconds: u32,
    /// Larger images (width × height, from the header) are refused before decoding.
    pub max_image_pixels: u64,
    /// Thumbnails fit in this many pixels each way.
    pub thumbnail_side: u32,
}

impl Default for Kafka {
    fn default() -> Self {
        Kafka {
            brokers: "127.0.0.1:9092".into(),
            audio_topic: "chat.audio".into(),
            image_topic: "chat.images".into(),
            messages_topic: "chat.events".into(),
            group: "chorus-transcriber".into(),
            session_timeout_ms: 10_000,
            rejoin_after_ms: 20_000,
            instance_id: String::new(),
        }
    }
}

impl Default for Model {
    fn default() -> Self {
        Model {
            path: PathBuf::from("ggml-tiny.en.bin"),
            threads: 2,
            ctx_padding_ms: 5_000,
        }
    }
}

impl Default for Media {
    fn default() -> Self {
        Media {
            path: PathBuf::from("media"),
            s3: chorus_media::store::S3::default(),
            max_voice_seconds: 300,
            max_image_pixels: 40_000_000,
            thumbnail_side: 320,
        }
    }
}

impl Config {
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let config: Config =
            chorus_runtime::config::load_layers(path, env, "CHORUS_TRANSCRIBER__", &[])?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let k = &self.kafka;
        anyhow::ensure!(
            !k.brokers.is_empty() && !k.audio_topic.is_empty() && !k.messages_topic.is_empty(),
            "kafka.brokers, audio_topic and messages_topic must be set"
        );
        anyhow::ensure!(
            k.audio_topic != k.messages_topic,
            "kafka.audio_topic and kafka.messages_topic must differ"
        );
        anyhow::ensure!(
            k.image_topic != k.messages_topic && k.image_topic != k.audio_topic,
            "kafka.image_topic must differ from audio_topic and messages_topic (or be empty)"
        );
        anyhow::ensure!(
            self.media.max_image_pixels > 0 && self.media.thumbnail_side > 0,
            "media.max_image_pixels and media.thumbnail_side must be positive"
        );
        anyhow::ensure!(
            (1..=64).contains(&self.model.threads),
            "model.threads must be 1 to 64"
        );
        anyhow::ensure!(
            self.model.path.is_file(),
            "model.path {} is not a file (run scripts/up, or chorus-transcriber prepare-model)",
            self.model.path.display()
        );
        self.http.validate()?;
        self.log.validate()?;
        anyhow::ensure!(
            self.media.max_voice_seconds > 0,
            "media.max_voice_seconds must be positive"
        );
        Ok(())
    }

    pub fn ctx_padding_ms(&self) -> Option<u64> {
        u64::try_from(self.model.ctx_padding_ms).ok()
    }
}
