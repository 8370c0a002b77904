//! Whatever bytes a Protobuf client sends, decoding returns commands or an error: never a
//! panic, and never a payload that is not JSON (Chorus forwards payloads as JSON).
#![no_main]

use chorus_protocol::{Method, Protocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(commands) = Protocol::Protobuf.decode_commands(data) {
        for c in commands {
            if let Method::Publish(p) = c.method {
                if let Some(d) = p.data {
                    assert!(serde_json::from_str::<serde_json::Value>(d.get()).is_ok());
                }
            }
        }
    }
});
