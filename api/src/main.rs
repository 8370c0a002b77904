//! `chorus-api`: read config, connect and migrate, serve until SIGTERM or SIGINT.

use std::sync::Arc;

use anyhow::Context;
use chorus_api::app::{app, AppState};
use chorus_api::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env(std::env::vars())?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("chorus_api=info,warn")),
        )
        .init();
    let db = chorus_api::db::connect(&config.database_url)
        .await
        .context("connecting to PostgreSQL")?;
    let listener = tokio::net::TcpListener::bind(&config.address)
        .await
        .with_context(|| format!("binding {}", config.address))?;
    tracing::info!(address = %config.address, "chorus-api listening");
    let state = AppState {
        config: Arc::new(config),
        db,
    };
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("invariant: SIGTERM can be handled");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    Ok(())
}
