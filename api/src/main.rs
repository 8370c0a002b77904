//! `chorus-api`: read config, connect and migrate, serve until SIGTERM or SIGINT.
//! `chorus-api migrate` only migrates; `chorus-api seed` adds fake data.

use std::path::PathBuf;

use anyhow::Context;
use chorus_api::config::Config;
use chorus_api::state::AppState;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Chorus API")]
struct Args {
    /// TOML config file; `CHORUS_API__*` variables override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Run the database migrations and exit (serving runs them too).
    Migrate,
    /// Add fake users, chats and messages (sent through Kafka like any message).
    Seed(chorus_api::seed::SeedArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Config::load(args.config.as_deref(), std::env::vars())?;
    chorus_runtime::process::init_logging("chorus_api", &config.log.level, &config.log.format);
    match args.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            chorus_api::db::connect(&config.database_url)
                .await
                .context("migrating PostgreSQL")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Seed(seed) => {
            let state = AppState::connect(config).await?;
            chorus_api::seed::run(&state, &seed).await
        }
        Command::Serve => {
            let address = config.address.clone();
            let listener = tokio::net::TcpListener::bind(&address)
                .await
                .with_context(|| format!("binding {address}"))?;
            let state = AppState::connect(config).await?;
            tracing::info!(%address, "chorus-api listening");
            let shutdown = chorus_runtime::process::stop_on_signals("shutting down");
            chorus_api::server::run(state, listener, shutdown).await?;
            tracing::info!("stopped");
            Ok(())
        }
    }
}
