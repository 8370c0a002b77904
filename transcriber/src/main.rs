//! `chorus-transcriber`: `serve` runs the consumer; `prepare-model` converts a Whisper model;
//! `transcribe` runs one file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chorus_media::audio;
use chorus_transcriber::config::Config;
use chorus_transcriber::model::ggml::WeightType;
use chorus_transcriber::{engine::Engine, model};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chorus-transcriber",
    version,
    about = "Transcribes Chorus voice messages with Whisper"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transcribes the audio topic until SIGTERM or SIGINT.
    Serve {
        /// TOML config file; `CHORUS_TRANSCRIBER__SECTION__KEY` variables override it.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Check the config and exit.
        #[arg(long)]
        check: bool,
    },
    /// Converts a CTranslate2 Whisper model (model.bin, vocabulary.txt) to whisper.cpp's format.
    PrepareModel {
        /// The directory holding model.bin and vocabulary.txt.
        #[arg(long)]
        from: PathBuf,
        /// The ggml file to write.
        #[arg(long)]
        to: PathBuf,
        #[arg(long, value_enum, default_value = "f16")]
        weights: WeightType,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Transcribes audio files: per file, the median inference time over `--repeat` runs, the
    /// real-time factor, and the text. The model is loaded once.
    Transcribe {
        #[arg(long)]
        model: PathBuf,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Encoder margin beyond the clip, in ms; negative for the full 30 s window.
        #[arg(long, default_value_t = 5000, allow_negative_numbers = true)]
        ctx_padding_ms: i64,
    },
}

fn main() -> std::process::ExitCode {
    chorus_runtime::process::exit("chorus-transcriber", real_main())
}

fn real_main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve { config, check } => serve(config, check)?,
        Command::PrepareModel {
            from,
            to,
            weights,
            quiet,
        } => {
            model::prepare(&from, &to, weights, !quiet)?;
            println!("wrote {}", to.display());
        }
        Command::Transcribe {
            model,
            files,
            repeat,
            threads,
            ctx_padding_ms,
        } => {
            let engine = Engine::load(&model, threads, u64::try_from(ctx_padding_ms).ok())?;
            println!("| clip | audio s | inference s (median of {repeat}) | × real time | text |");
            println!("|---|---|---|---|---|");
            for file in files {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let decoded = audio::decode(bytes, 600)?;
                let samples = audio::to_whisper_rate(&decoded.samples, decoded.sample_rate);
                let mut times = Vec::with_capacity(repeat);
                let mut text = String::new();
                for _ in 0..repeat.max(1) {
                    let start = Instant::now();
                    text = engine.transcribe(&samples)?.text;
                    times.push(start.elapsed().as_secs_f64());
                }
                times.sort_by(f64::total_cmp);
                let median = times[times.len() / 2];
                let audio_s = samples.len() as f64 / 16_000.0;
                let name = file
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                println!(
                    "| {name} | {audio_s:.2} | {median:.3} | {:.1} | {text} |",
                    audio_s / median
                );
            }
        }
    }
    Ok(())
}

fn serve(path: Option<PathBuf>, check: bool) -> anyhow::Result<()> {
    let config = Config::load(path.as_deref(), std::env::vars())?;
    if check {
        println!("config is valid");
        return Ok(());
    }
    chorus_transcriber::serve(config)
}
