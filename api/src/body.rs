//! A JSON body extractor whose rejections are [`ApiError`]s, so a malformed body, a wrong
//! type or a missing field gets the same JSON error shape as everything else.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(e) => Err(ApiError::Validation(match e {
                JsonRejection::MissingJsonContentType(_) => {
                    "expected Content-Type: application/json".to_owned()
                }
                other => other.body_text(),
            })),
        }
    }
}

/// A query-string extractor whose rejections are [`ApiError`]s too.
pub struct Params<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Params(v))
            .map_err(|e| ApiError::Validation(e.body_text()))
    }
}

/// A multipart body whose rejections (no `multipart/form-data` content type, no boundary) are
/// [`ApiError`]s, not axum's plain-text ones.
pub struct Form(pub axum::extract::Multipart);

impl<S> FromRequest<S> for Form
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Multipart::from_request(req, state)
            .await
            .map(Form)
            .map_err(|e| ApiError::Validation(format!("multipart: {}", e.body_text())))
    }
}
