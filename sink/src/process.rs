//! What a service's `main` does around its `run`: logs, and a shutdown token cancelled by
//! SIGTERM or SIGINT. The sink and the transcriber start alike; the API takes the token.

use tokio_util::sync::CancellationToken;

/// Text or JSON logs at `level` for `crate_name` (other crates at `warn`); `RUST_LOG`
/// overrides it when set.
pub fn init_logging(crate_name: &str, level: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{crate_name}={level},warn"))
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

/// A token cancelled at the first SIGTERM or SIGINT, which is then logged as `note`. Call it
/// inside the runtime.
pub fn stop_on_signals(note: &'static str) -> CancellationToken {
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("invariant: SIGTERM can be handled");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("{note}");
        signals.cancel();
    });
    shutdown
}
