//! Whatever bytes a state-topic record holds, the state-event decoder returns an event or an
//! error, never a panic; and an event it accepts survives encoding unchanged.
#![no_main]

use chorus_protocol::state::StateEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = StateEvent::decode(data) else {
        return;
    };
    let again = StateEvent::decode(&event.encode()).expect("an accepted event decodes after encoding");
    assert_eq!(again, event, "encoding round-trips");
});
