//! Whatever bytes a client sends, decoding returns commands or an error: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chorus_protocol::decode_commands(data);
});
