//! Logging: structured `tracing`, human-readable locally, JSON in production.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides `log.level` when set.
pub fn init(level: &str, format: &str) {
    let level = if level == "none" { "off" } else { level };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("chorus_hub={level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
