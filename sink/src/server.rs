//! `/health` and `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::status::Status;

pub fn app(status: Arc<Status>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(status)
}

/// 200 while serving (`ok`, `starting` or `degraded`: records wait, nothing is lost), 503
/// while shutting down.
async fn health(State(status): State<Arc<Status>>) -> Response {
    let (serving, body) = status.health();
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

async fn metrics(State(status): State<Arc<Status>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        status.metrics.render(),
    )
        .into_response()
}
