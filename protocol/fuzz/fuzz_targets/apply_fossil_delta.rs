//! Whatever a server sends as a delta, applying it returns the target or an error: never a
//! panic, and never an allocation past what the delta could make.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input into a source and a delta.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (source, delta) = rest.split_at(usize::from(split).min(rest.len()));
    if let Ok(out) = chorus_protocol::fossil::apply(source, delta) {
        assert!(out.len() <= source.len() * delta.len() + delta.len());
    }
});
