//! `chorus-sink`: parse config, start logging, serve until SIGTERM or SIGINT.

use std::path::PathBuf;

use anyhow::Context;
use chorus_sink::config::Config;
use clap::Parser;
use tokio_util::sync::CancellationToken;

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
    init_logging(&config.log.level, &config.log.format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.http.address)
            .await
            .with_context(|| format!("binding {}", config.http.address))?;
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("invariant: SIGTERM can be handled");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("shutting down: flushing and committing");
            signals.cancel();
        });
        chorus_sink::run(config, listener, shutdown).await
    })
}

/// `RUST_LOG` overrides `log.level` when set.
fn init_logging(level: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("chorus_sink={level},warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
