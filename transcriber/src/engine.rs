//! The Whisper model through whisper-rs: loaded once, one state per job, run on the caller's
//! thread (the service calls it from a blocking pool).

use std::path::Path;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use chorus_media::audio::resample::WHISPER_RATE;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("loading the model {path}: {source}")]
    Load {
        path: String,
        source: whisper_rs::WhisperError,
    },
    #[error("whisper: {0}")]
    Run(#[from] whisper_rs::WhisperError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub text: String,
    pub language: Option<String>,
}

pub struct Engine {
    context: WhisperContext,
    threads: i32,
    /// Encoder positions beyond the clip's own, as margin (see [`Engine::audio_ctx`]); `None`
    /// for whisper.cpp's full window.
    ctx_padding: Option<i32>,
}

/// whisper.cpp's encoder covers 30 s in 1500 positions: 20 ms each.
const MS_PER_POSITION: u64 = 20;
const FULL_WINDOW: u64 = 1500;

impl Engine {
    pub fn load(
        path: &Path,
        threads: usize,
        ctx_padding_ms: Option<u64>,
    ) -> Result<Self, EngineError> {
        // whisper.cpp's own logging goes through `tracing` (target whisper_rs), not stderr.
        whisper_rs::install_logging_hooks();
        let params = WhisperContextParameters {
            use_gpu: cfg!(feature = "cuda"),
            ..Default::default()
        };
        let context =
            WhisperContext::new_with_params(path, params).map_err(|source| EngineError::Load {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            context,
            threads: i32::try_from(threads.max(1)).unwrap_or(1),
            ctx_padding: ctx_padding_ms.map(|ms| (ms / MS_PER_POSITION) as i32),
        })
    }

    pub fn is_multilingual(&self) -> bool {
        self.context.is_multilingual()
    }

    /// whisper.cpp pads every clip to a 30 s window, so a 5 s voice message would pay for 30 s
    /// of encoder. Its `audio_ctx` shrinks the window to the clip plus a margin: with none the
    /// model, trained on full windows, repeats the clip's sentence (seen with 0 and 1 s, and
    /// with 2 s on a 2.6 s clip; not with 3 s or more on 16 test clips). 0 means the whole
    /// window.
    pub fn audio_ctx(&self, samples: usize) -> i32 {
        let Some(padding) = self.ctx_padding else {
            return 0;
        };
        let ms = samples as u64 * 1000 / u64::from(WHISPER_RATE);
        let positions = ms.div_ceil(MS_PER_POSITION) as i32 + padding;
        if positions as u64 >= FULL_WINDOW {
            0
        } else {
            positions
        }
    }

    /// Transcribes 16 kHz mono samples.
    pub fn transcribe(&self, samples: &[f32]) -> Result<Transcript, EngineError> {
        let mut state = self.context.create_state()?;
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.threads);
        params.set_audio_ctx(self.audio_ctx(samples.len()));
        params.set_no_context(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);
        if self.is_multilingual() {
            params.set_language(Some("auto"));
        } else {
            params.set_language(Some("en"));
        }
        state.full(params, samples)?;
        let mut text = String::new();
        for segment in state.as_iter() {
            text.push_str(&segment.to_str_lossy()?);
        }
        let language = whisper_rs::get_lang_str(state.full_lang_id_from_state()).map(str::to_owned);
        Ok(Transcript {
            text: text.trim().to_owned(),
            language,
        })
    }
}
