//! Pusher Channels protocol 7: wait for `pusher:connection_established`, subscribe to a public
//! channel, answer `pusher:ping`. Event data arrives as a JSON string holding the payload.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::Event;
use crate::payload::Payload;

/// The event name the harness publishes under.
pub const EVENT: &str = "loadtest";

pub struct State {
    channel: String,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// `ws://host:port` → `ws://host:port/app/<key>?protocol=7&client=chorus-loadtest&version=1.0`.
pub fn url(base: &str, key: &str) -> String {
    format!(
        "{}/app/{key}?protocol=7&client=chorus-loadtest&version=1.0",
        base.trim_end_matches('/')
    )
}

impl State {
    pub fn new(channel: String) -> Self {
        Self { channel }
    }

    pub fn on_text(&mut self, text: &str, events: &mut Vec<Event>, replies: &mut Vec<String>) {
        let msg: Message = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                events.push(Event::Garbled(format!("{e}")));
                return;
            }
        };
        match msg.event {
            "pusher:connection_established" => replies.push(
                serde_json::json!({"event": "pusher:subscribe", "data": {"channel": self.channel}})
                    .to_string(),
            ),
            "pusher_internal:subscription_succeeded" => events.push(Event::Subscribed),
            "pusher:ping" => replies.push(r#"{"event":"pusher:pong","data":{}}"#.into()),
            "pusher:error" | "pusher:subscription_error" => events.push(Event::Refused(
                msg.data.map_or_else(String::new, |d| d.get().to_string()),
            )),
            EVENT => match msg.data.map(payload) {
                Some(Ok(p)) => events.push(Event::Publication(p)),
                Some(Err(e)) => events.push(Event::Garbled(e.to_string())),
                None => events.push(Event::Garbled("event without data".into())),
            },
            _ => {}
        }
    }
}

/// Pusher carries data as a string of JSON; tolerate an object too.
fn payload(raw: &RawValue) -> serde_json::Result<Payload> {
    if raw.get().starts_with('"') {
        let inner: String = serde_json::from_str(raw.get())?;
        serde_json::from_str(&inner)
    } else {
        serde_json::from_str(raw.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_subscribe_ping_and_events() {
        let mut s = State::new("lt-broadcast".into());
        let (mut ev, mut re) = (Vec::new(), Vec::new());
        s.on_text(
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#,
            &mut ev,
            &mut re,
        );
        let sub: serde_json::Value = serde_json::from_str(&re[0]).expect("json");
        assert_eq!(sub["event"], "pusher:subscribe");
        assert_eq!(sub["data"]["channel"], "lt-broadcast");
        s.on_text(
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"lt-broadcast","data":"{}"}"#,
            &mut ev,
            &mut re,
        );
        s.on_text(r#"{"event":"pusher:ping","data":{}}"#, &mut ev, &mut re);
        s.on_text(
            r#"{"event":"loadtest","channel":"lt-broadcast","data":"{\"t\":9,\"s\":4,\"p\":\"x\"}"}"#,
            &mut ev,
            &mut re,
        );
        assert_eq!(
            ev,
            vec![
                Event::Subscribed,
                Event::Publication(Payload { t: 9, s: 4 })
            ]
        );
        assert_eq!(re[1], r#"{"event":"pusher:pong","data":{}}"#);
    }
}
