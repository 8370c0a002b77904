//! Property tests: no input makes the decoder panic, and valid commands survive any batching.
#![allow(clippy::unwrap_used)]

use chorus_protocol::frame::{decode_commands, Method};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_commands(&bytes);
    }

    #[test]
    fn json_looking_garbage_never_panics(s in r#"[{}\[\]":,a-z0-9\n ]{0,200}"#) {
        let _ = decode_commands(s.as_bytes());
    }

    #[test]
    fn publishes_round_trip_in_any_batch(ids in proptest::collection::vec(1u32..u32::MAX, 1..20), text in "[a-zA-Z0-9 ]{0,40}") {
        let frame = ids
            .iter()
            .map(|id| format!(r#"{{"id":{id},"publish":{{"channel":"c","data":{{"t":"{text}"}}}}}}"#))
            .collect::<Vec<_>>()
            .join("\n");
        let cmds = decode_commands(frame.as_bytes()).unwrap();
        prop_assert_eq!(cmds.len(), ids.len());
        for (c, id) in cmds.iter().zip(&ids) {
            prop_assert_eq!(c.id, *id);
            let is_publish = matches!(&c.method, Method::Publish(p) if p.channel == "c");
            prop_assert!(is_publish);
        }
    }
}
