//! The router: every feature's routes, the documents and probes, the web client's files
//! (`web.dir`), and the layers around them.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Request;
use axum::routing::get;
use axum::Router;

use crate::state::AppState;
use crate::{auth, chats, health, hub, media, messages, openapi};

/// Bodies over this are refused before they are read.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(auth::routes())
        .merge(hub::routes())
        .merge(chats::routes())
        .merge(messages::routes())
        .merge(media::routes(&state.config.media))
        .route("/openapi.json", get(openapi::document))
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics));
    let api = match state.config.web.dir.as_str() {
        "" => api.fallback(|| async { crate::error::ApiError::NoRoute }),
        dir => {
            let dir = Arc::new(PathBuf::from(dir));
            api.fallback(move |request: Request| crate::web::serve(dir.clone(), request))
        }
    };
    let api = api
        .method_not_allowed_fallback(|| async { crate::error::ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    api.layer(axum::middleware::from_fn(crate::unread::close_if_unread))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}
