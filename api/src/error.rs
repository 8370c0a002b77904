//! The one error type of the HTTP layer: every failure is a JSON body with a stable code and
//! a 4xx status; internal errors are logged once here and answered with a generic 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a field is out of range.
    #[error("{0}")]
    Validation(String),
    /// Missing, forged or expired credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Conflict(&'static str),
    /// Authenticated, but not allowed (not a member, not an admin).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    /// Something the request names does not exist (a user to add).
    #[error("{0}")]
    Missing(String),
    /// No route has this path.
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// An upload over a size or pixel limit.
    #[error("{0}")]
    TooLarge(String),
    /// An upload of a type that is not taken.
    #[error("unsupported media type; accepted: {0}")]
    UnsupportedMedia(&'static str),
    /// A file of an accepted type whose contents do not decode.
    #[error("{0}")]
    Unprocessable(String),
    #[error("range not satisfiable")]
    RangeNotSatisfiable,
    /// Too many requests; try again after this long.
    #[error("too many requests")]
    RateLimited(std::time::Duration),
    /// A service the request needs (Kafka, DynamoDB) is down: retry later, nothing was done.
    #[error("{0}")]
    Unavailable(String),
    /// The media store has no room for an upload: nothing was stored or sent.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    /// PostgreSQL unreachable, restarting or shutting down is a 503 the client may retry:
    /// the transaction it was in did not commit. Anything else is a bug, a 500.
    fn from(e: sqlx::Error) -> Self {
        if database_unavailable(&e) {
            tracing::warn!(error = %e, "postgresql unavailable");
            return ApiError::Unavailable("the database is unavailable; retry".into());
        }
        ApiError::Internal(e.into())
    }
}

/// Whether `e` says the database could not be reached or was going away, rather than that the
/// query was wrong.
fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        // Class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown,
        // cannot connect now), 53300 (too many connections).
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Whether an object-store failure is the disk (or the bucket's quota) being full.
pub fn storage_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Validation(_) => (StatusCode::BAD_REQUEST, "validation"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound | ApiError::NoRoute | ApiError::Missing(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMedia(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::RangeNotSatisfiable => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::InsufficientStorage(_) => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response();
        if let ApiError::RateLimited(wait) = self {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs.max(1)),
            );
        }
        response
    }
}
