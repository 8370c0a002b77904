//! The payload of every publication: when it was sent and its place in its channel's sequence.
//!
//! `{"t":<unix µs>,"s":<seq>,"p":"<padding>"}`. The clock is the machine's wall clock, shared
//! by the publisher and the workers because all of them run on the same host.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// The fields the receiver needs; the padding is skipped.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Payload {
    /// Send time, microseconds since the Unix epoch.
    pub t: u64,
    /// Sequence number within its channel, from 1.
    pub s: u64,
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Encodes a payload of about `size` bytes.
pub fn encode(sent_us: u64, seq: u64, size: usize) -> String {
    let mut s = format!(r#"{{"t":{sent_us},"s":{seq},"p":""#);
    let pad = size.saturating_sub(s.len() + 2);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads_to_size() {
        let text = encode(1_700_000_000_000_000, 42, 128);
        assert_eq!(text.len(), 128);
        let p: Payload = serde_json::from_str(&text).expect("valid json");
        assert_eq!(
            p,
            Payload {
                t: 1_700_000_000_000_000,
                s: 42
            }
        );
        // A size smaller than the fields is not an error: no padding.
        let small = encode(1, 2, 0);
        assert_eq!(
            serde_json::from_str::<Payload>(&small).expect("valid"),
            Payload { t: 1, s: 2 }
        );
    }
}
