//! `Connection: close` on any response sent before its request's body was read to the end.
//!
//! hyper does not read an unread body after the response: it closes the connection instead,
//! without saying so. A client that pooled that connection (reqwest, browsers) then sends its
//! next request into a closed socket and fails it. A refusal that comes before the body is
//! read (an auth extractor's 401, a rate limit's 429, a body over the limit) now says it
//! closes, on every route.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;

pub async fn close_if_unread(req: Request, next: Next) -> Response {
    let body = req.body();
    let has_body = !HttpBody::is_end_stream(body) && HttpBody::size_hint(body).upper() != Some(0);
    if !has_body {
        return next.run(req).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let mark = finished.clone();
    // The stream's end is reached only when a reader polled past the last byte.
    let tracked = body
        .into_data_stream()
        .chain(futures_util::stream::poll_fn(move |_| {
            mark.store(true, Ordering::Release);
            std::task::Poll::Ready(None)
        }));
    let mut response = next
        .run(Request::from_parts(parts, Body::from_stream(tracked)))
        .await;
    if !finished.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
