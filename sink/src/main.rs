//! `chorus-sink`: parse config, start logging, serve until SIGTERM or SIGINT.

use std::path::PathBuf;

use anyhow::Context;
use chorus_sink::config::Config;
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "chorus-sink",
    version,
    about = "Persists Chorus chat events from Kafka into DynamoDB"
)]
struct Cli {
    /// TOML config file; `CHORUS_SINK__SECTION__KEY` variables override it.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Check the config and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chorus-sink: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if cli.check {
        println!("config is valid");
        return Ok(());
    }
    chorus_sink::process::init_logging("chorus_sink", &config.log.level, &config.log.format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.http.address)
            .await
            .with_context(|| format!("binding {}", config.http.address))?;
        let shutdown =
            chorus_sink::process::stop_on_signals("shutting down: flushing and committing");
        chorus_sink::run(config, listener, shutdown).await
    })
}
