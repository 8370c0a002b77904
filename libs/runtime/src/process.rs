//! What a service's `main` does around its `run`: logs, a runtime, its HTTP listener, and a
//! shutdown token cancelled by SIGTERM or SIGINT. Every service starts alike.

use std::future::Future;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Log;

/// How a service's `main` ends: success, or `<name>: <error and its causes>` on stderr and a
/// failure code (a bad config, a port taken, a broker refused at start).
pub fn exit(name: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Text or JSON logs for `crate_name` at `level` (other crates at `warn`); a level with `=`
/// in it is a whole tracing filter (`chorus_api=debug,sqlx=info`), `none` is Centrifugo's
/// word for off, and `RUST_LOG` overrides it all when set.
pub fn init_logging(crate_name: &str, level: &str, format: &str) {
    let directives = match level {
        "none" => "off".to_owned(),
        l if l.contains('=') => l.to_owned(),
        l => format!("{crate_name}={l},warn"),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves at the first SIGTERM or SIGINT.
pub async fn signalled() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("invariant: SIGTERM can be handled");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A token cancelled at the first SIGTERM or SIGINT, which is then logged as `note`. Call it
/// inside the runtime.
pub fn stop_on_signals(note: &'static str) -> CancellationToken {
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        signalled().await;
        tracing::info!("{note}");
        signals.cancel();
    });
    shutdown
}

/// A worker service's whole life after its config is loaded: logs for `crate_name`, a
/// multi-threaded runtime, `address` bound for `/health` and `/metrics`, and `run` with the
/// listener and a token that SIGTERM or SIGINT cancel (then logged as `note`).
pub fn serve<F, Fut>(
    crate_name: &str,
    log: &Log,
    address: &str,
    note: &'static str,
    run: F,
) -> anyhow::Result<()>
where
    F: FnOnce(tokio::net::TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    init_logging(crate_name, &log.level, &log.format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("binding {address}"))?;
        run(listener, stop_on_signals(note)).await
    })
}
