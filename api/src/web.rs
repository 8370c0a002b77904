//! The web client's built files at `/` (`web.dir`), so the page and the API share one origin.
//! A request no route takes is, for `GET` and `HEAD`, a file of the build if there is one;
//! else, for a page the client routes itself (the browser asks for `text/html`), the client's
//! `index.html`; anything else is the API's JSON 404, as without a client. The API's own routes
//! come first, so the client's pages live under paths the API does not route (`/c/<chat>`,
//! not `/chats/<id>`).

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::error::ApiError;

/// The router's fallback when `web.dir` is set.
pub async fn serve(dir: Arc<PathBuf>, request: Request) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return ApiError::NoRoute.into_response();
    }
    let wants_page = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let (parts, body) = request.into_parts();
    let retry = Request::from_parts(parts.clone(), axum::body::Body::empty());
    let file = ServeDir::new(dir.as_path())
        .oneshot(Request::from_parts(parts, body))
        .await
        .map(IntoResponse::into_response);
    match file {
        Ok(found) if found.status() != StatusCode::NOT_FOUND => found,
        _ if wants_page => match ServeFile::new(dir.join("index.html")).oneshot(retry).await {
            Ok(page) => page.into_response(),
            Err(never) => match never {},
        },
        _ => ApiError::NoRoute.into_response(),
    }
}
