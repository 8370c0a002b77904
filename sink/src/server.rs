//! `/health` and `/metrics` for a worker service: the sink's, and the transcriber's through
//! [`Probe`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::status::Status;

/// What a service's `/health` and `/metrics` show.
pub trait Probe: Send + Sync + 'static {
    /// The `/health` body, and whether the service is serving (200) or shutting down (503).
    fn health(&self) -> (bool, serde_json::Value);
    /// The Prometheus text exposition.
    fn metrics(&self) -> String;
}

impl Probe for Status {
    fn health(&self) -> (bool, serde_json::Value) {
        Status::health(self)
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }
}

pub fn app<P: Probe>(probe: Arc<P>) -> Router {
    Router::new()
        .route("/health", get(health::<P>))
        .route("/metrics", get(metrics::<P>))
        .with_state(probe)
}

/// 200 while serving (for the sink `ok`, `starting` or `degraded`: records wait, nothing is
/// lost), 503 while shutting down.
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
