//! Comparing shared keys (the hub's API key, the subscribe proxy's key) without telling a
//! caller, through the time an answer takes, how much of a guess was right.

use std::hint::black_box;

/// Whether `given` equals `expected`. The time depends only on the longer length, never on
/// where the first differing byte is.
pub fn keys_match(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for i in 0..given.len().max(expected.len()) {
        let a = given.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        diff |= black_box(a ^ b);
    }
    diff == 0
}

/// A URL fit for a log line or an error message: the password of `scheme://user:pass@host`
/// replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            // `user:password@` or `:password@`; a bare `user@` has no password to hide.
            let shown = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_owned(),
            };
            format!("{scheme}://{shown}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{keys_match, redact_url};

    #[test]
    fn passwords_never_reach_a_log_line() {
        assert_eq!(
            redact_url("redis://default:hunter2@10.0.0.1:6379/0"),
            "redis://default:***@10.0.0.1:6379/0"
        );
        assert_eq!(redact_url("redis://:hunter2@r:6379"), "redis://:***@r:6379");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("redis://user@r"), "redis://user@r");
        assert_eq!(redact_url("not a url"), "not a url");
        assert!(!redact_url("postgres://u:p%40ss@db/x?sslmode=require").contains("p%40ss"));
    }

    #[test]
    fn only_the_same_bytes_match() {
        assert!(keys_match(b"secret", b"secret"));
        assert!(!keys_match(b"secreT", b"secret"));
        assert!(!keys_match(b"secret\0", b"secret"));
        assert!(!keys_match(b"secre", b"secret"));
        assert!(!keys_match(b"", b"secret"));
        assert!(keys_match(b"", b""));
    }
}
