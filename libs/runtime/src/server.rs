//! `/health` and `/metrics` for a worker service (the sink, the transcriber), over whatever
//! it reports through [`Probe`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

/// What a service's `/health` and `/metrics` show.
pub trait Probe: Send + Sync + 'static {
    /// The `/health` body, and whether the service is serving (200) or shutting down (503).
    fn health(&self) -> (bool, serde_json::Value);
    /// The Prometheus text exposition.
    fn metrics(&self) -> String;
}

/// Serves [`app`] on `listener` until `stop`, in a task of its own: a worker keeps answering
/// `/health` (503 while it drains) until it has flushed and committed what it holds.
pub fn spawn<P: Probe>(
    listener: tokio::net::TcpListener,
    probe: Arc<P>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let app = app(probe);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    })
}

pub fn app<P: Probe>(probe: Arc<P>) -> Router {
    Router::new()
        .route("/health", get(health::<P>))
        .route("/metrics", get(metrics::<P>))
        .with_state(probe)
}

/// 200 while serving (`ok`, `starting` or `degraded`: records wait, nothing is lost), 503
/// while shutting down.
async fn health<P: Probe>(State(probe): State<Arc<P>>) -> Response {
    let (serving, body) = probe.health();
    let code = if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics<P: Probe>(State(probe): State<Arc<P>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        probe.metrics(),
    )
        .into_response()
}
