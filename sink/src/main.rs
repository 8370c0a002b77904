//! `chorus-sink`: parse config, start logging, serve until SIGTERM or SIGINT.

use std::path::PathBuf;

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
    chorus_runtime::process::exit("chorus-sink", real_main())
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if cli.check {
        println!("config is valid");
        return Ok(());
    }
    let (log, address) = (config.log.clone(), config.http.address.clone());
    chorus_runtime::process::serve(
        "chorus_sink",
        &log,
        &address,
        "shutting down: flushing and committing",
        |listener, shutdown| chorus_sink::run(config, listener, shutdown),
    )
}
