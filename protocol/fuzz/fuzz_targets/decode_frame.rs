//! Whatever bytes a client sends, decoding returns commands or an error: never a panic; and a
//! tags filter in a subscribe is validated, and a valid one evaluated, without one either.
#![no_main]

use chorus_protocol::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(commands) = chorus_protocol::decode_commands(data) {
        for c in commands {
            if let Method::Subscribe(s) = c.method {
                if let Some(f) = s.tf.filter(|f| f.validate().is_ok()) {
                    let tags = [("kind".to_owned(), "1.5".to_owned())].into();
                    let _ = (f.matches(None), f.matches(Some(&tags)));
                }
            }
        }
    }
});
