//! Whatever bytes a client sends on a WebSocket, the hub's frame parser walks them as a
//! connection does (frame after frame, each unmasked) and ends in a complete frame, a wait
//! for more, or an error: never a panic, never a length past the limit or the buffer.
#![no_main]

use chorus_protocol::websocket::{parse_client_frame, unmask};
use libfuzzer_sys::fuzz_target;

/// The hub's default `websocket.message_size_limit`.
const LIMIT: usize = 65_536;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while at < data.len() {
        let buf = &data[at..];
        match parse_client_frame(buf, LIMIT) {
            Ok(Some(f)) => {
                assert!(f.payload_len <= LIMIT);
                assert!(f.header_len >= 6 && f.header_len <= 14);
                if f.is_control() {
                    assert!(f.fin && f.payload_len <= 125);
                }
                if buf.len() < f.frame_len() {
                    return;
                }
                let mut payload = buf[f.header_len..f.frame_len()].to_vec();
                unmask(&mut payload, f.mask);
                unmask(&mut payload, f.mask);
                assert_eq!(payload, &buf[f.header_len..f.frame_len()]);
                at += f.frame_len();
            }
            Ok(None) | Err(_) => return,
        }
    }
});
