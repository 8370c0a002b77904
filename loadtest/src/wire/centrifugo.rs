//! Centrifugo client protocol v2, JSON: connect and subscribe in one frame, pushes in, `{}`
//! pings answered with `{}`.
//!
//! A server message may hold several frames separated by newlines.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::delta::Base;
use super::Event;
use crate::payload::Payload;

const CONNECT_ID: u32 = 1;
const SUBSCRIBE_ID: u32 = 2;

pub struct State {
    token: Option<String>,
    channel: String,
    /// With delta compression: every publication's data is a string (a document or a delta).
    delta: Option<Base>,
}

#[derive(Deserialize)]
struct Frame {
    #[serde(default)]
    id: u32,
    error: Option<ErrorBody>,
    push: Option<Push>,
    connect: Option<IgnoredAny>,
    subscribe: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: u32,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "pub")]
    publication: Option<Publication>,
}

#[derive(Deserialize)]
struct Publication {
    data: Box<RawValue>,
    #[serde(default)]
    delta: bool,
}

impl State {
    pub fn new(token: Option<String>, channel: String, delta: bool) -> Self {
        Self {
            token,
            channel,
            delta: delta.then(Base::default),
        }
    }

    pub fn opening(&mut self) -> String {
        let mut connect = serde_json::json!({"name": "chorus-loadtest"});
        if let Some(token) = self.token.take() {
            connect["token"] = token.into();
        }
        format!(
            "{}\n{}",
            serde_json::json!({"id": CONNECT_ID, "connect": connect}),
            if self.delta.is_some() {
                serde_json::json!({"id": SUBSCRIBE_ID, "subscribe": {"channel": self.channel, "delta": "fossil"}})
            } else {
                serde_json::json!({"id": SUBSCRIBE_ID, "subscribe": {"channel": self.channel}})
            },
        )
    }

    pub fn on_text(&mut self, text: &str, events: &mut Vec<Event>, replies: &mut Vec<String>) {
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            let frame: Frame = match serde_json::from_str(line) {
                Ok(f) => f,
                Err(e) => {
                    events.push(Event::Garbled(format!("{e}: {}", truncate(line))));
                    continue;
                }
            };
            if let Some(err) = frame.error {
                events.push(Event::Refused(format!("{} {}", err.code, err.message)));
            } else if let Some(push) = frame.push {
                if let Some(p) = push.publication {
                    events.push(match self.payload(&p) {
                        Ok(payload) => Event::Publication(payload),
                        Err(e) => Event::Garbled(e),
                    });
                }
            } else if frame.id == SUBSCRIBE_ID && frame.subscribe.is_some() {
                events.push(Event::Subscribed);
            } else if frame.id == 0 && frame.connect.is_none() {
                // An empty frame is the server's ping.
                replies.push("{}".into());
            }
        }
    }
}

impl State {
    fn payload(&mut self, p: &Publication) -> Result<Payload, String> {
        let Some(base) = self.delta.as_mut() else {
            return serde_json::from_str(p.data.get()).map_err(|e| e.to_string());
        };
        let text: String =
            serde_json::from_str(p.data.get()).map_err(|e| format!("delta data: {e}"))?;
        base.next(text.as_bytes(), p.delta)
    }
}

fn truncate(s: &str) -> &str {
    let end = s.char_indices().nth(120).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(text: &str) -> (Vec<Event>, Vec<String>) {
        let mut s = State::new(None, "c".into(), false);
        let (mut ev, mut re) = (Vec::new(), Vec::new());
        s.on_text(text, &mut ev, &mut re);
        (ev, re)
    }

    #[test]
    fn opening_sends_connect_then_subscribe() {
        let mut s = State::new(Some("jwt".into()), "lt-room-1".into(), false);
        let text = s.opening();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines[0]["connect"]["token"], "jwt");
        assert_eq!(lines[1]["subscribe"]["channel"], "lt-room-1");
    }

    #[test]
    fn reads_batched_replies_pushes_and_pings() {
        let (ev, re) = feed(concat!(
            r#"{"id":1,"connect":{"client":"x","version":"0"}}"#,
            "\n",
            r#"{"id":2,"subscribe":{}}"#,
            "\n",
            r#"{"push":{"channel":"c","pub":{"data":{"t":5,"s":1,"p":"xx"},"offset":3}}}"#,
            "\n{}"
        ));
        assert_eq!(
            ev,
            vec![
                Event::Subscribed,
                Event::Publication(Payload { t: 5, s: 1 })
            ]
        );
        assert_eq!(re, vec!["{}".to_string()]);
    }

    #[test]
    fn errors_and_garbage_are_reported() {
        let (ev, _) = feed(r#"{"id":2,"error":{"code":103,"message":"permission denied"}}"#);
        assert_eq!(ev, vec![Event::Refused("103 permission denied".into())]);
        let (ev, _) = feed("not json");
        assert!(matches!(ev[0], Event::Garbled(_)));
    }
}
