//! `chorus-loadtest`: see the library docs; this only parses the command line.

use clap::Parser;

use chorus_loadtest::cli::{Cli, Mode};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    match cli.mode {
        Mode::Worker => runtime.block_on(chorus_loadtest::worker::main()),
        Mode::Produce {
            brokers,
            topic,
            key,
            headers,
        } => runtime.block_on(chorus_loadtest::produce::run(
            &brokers,
            &topic,
            key.as_deref(),
            &headers,
        )),
        Mode::FloorServer { listen } => runtime.block_on(async {
            chorus_loadtest::fdlimit::raise();
            let listener = tokio::net::TcpListener::bind(listen).await?;
            chorus_loadtest::floor_server::run(listener).await
        }),
        Mode::Compare {
            files,
            ours,
            theirs,
        } => {
            print!(
                "{}",
                chorus_loadtest::report::compare::render(&files, &ours, &theirs)?
            );
            Ok(())
        }
        mode => {
            let (scenario, args) = mode.into_run().expect("invariant: not the worker mode");
            let report = runtime.block_on(chorus_loadtest::coordinator::run(scenario, args))?;
            // A run whose connections failed or lost messages still writes its report, but
            // exits non-zero so scripts notice.
            std::process::exit(if report.healthy() { 0 } else { 2 });
        }
    }
}
