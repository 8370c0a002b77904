//! Whatever bytes a Kafka record holds, the chat-event decoder returns an event or an error,
//! never a panic; and an event it accepts survives encoding: encoded again it decodes to the
//! same encoding (what the hub, the sink and the transcriber rely on when they re-publish).
#![no_main]

use chorus_protocol::event::ChatEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = ChatEvent::decode(data) else {
        return;
    };
    let bytes = event.encode();
    let again = ChatEvent::decode(&bytes).expect("an accepted event decodes after encoding");
    assert_eq!(again.encode(), bytes, "encoding is stable");
    let _ = (event.channel(), event.message_id());
});
