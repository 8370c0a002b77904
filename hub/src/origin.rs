//! Which browser origins may open a client connection (`client.allowed_origins`), for every
//! transport that upgrades or streams.

use axum::http::{header, HeaderMap};

/// Centrifugo's rule: no Origin (not a browser) or the same host passes; otherwise the origin
/// must match `client.allowed_origins`, where `*` matches any run of characters.
pub fn allowed(patterns: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split("://").nth(1).unwrap_or(origin);
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        return true;
    }
    patterns.iter().any(|pattern| {
        crate::glob::glob_match(&pattern.to_ascii_lowercase(), &origin.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        assert!(allowed(&[], &h), "no origin: not a browser");
        h.insert(header::HOST, HeaderValue::from_static("chat.example:8000"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://chat.example:8000"),
        );
        assert!(allowed(&[], &h), "same origin");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!allowed(&[], &h));
        assert!(allowed(&["http://*.example".into()], &h));
        assert!(allowed(&["*".into()], &h));
    }
}
