//! Whatever bytes a Protobuf client sends, decoding returns commands or an error: never a
//! panic, and never a payload that is not JSON (Chorus forwards payloads as JSON). The same
//! bytes as an `/emulation` request body (whose `data` holds commands) are decoded too.
#![no_main]

use chorus_protocol::{proto, Method, Protocol};
use libfuzzer_sys::fuzz_target;

fn commands(data: &[u8]) {
    if let Ok(commands) = Protocol::Protobuf.decode_commands(data) {
        for c in commands {
            match c.method {
                Method::Publish(p) => {
                    if let Some(d) = p.data {
                        assert!(serde_json::from_str::<serde_json::Value>(d.get()).is_ok());
                    }
                }
                Method::Subscribe(s) => {
                    if let Some(f) = s.tf.filter(|f| f.validate().is_ok()) {
                        let _ = f.matches(None);
                    }
                }
                _ => {}
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    commands(data);
    if let Ok(req) = proto::decode_emulation_request(data) {
        commands(&req.data);
    }
});
