//! What a consumed record asks the hub to do, decided from its payload and headers alone.
//!
//! Three shapes are read, one per consumer (its mode):
//! - Centrifugo API commands: `{"method": "publish", "payload": {...}}`, or the params alone
//!   with the method in a header (`method_header`);
//! - Centrifugo's publication data mode: the payload is the data, headers name the channels,
//!   the idempotency key and tags;
//! - Chorus chat events (`chorus_protocol::event`), each for `chat:<chat_id>`.
//!
//! A record that cannot be used is an `Err` with the reason; it goes to the dead-letter topic.

use std::collections::BTreeMap;

use chorus_protocol::event::ChatEvent;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::consumers::KafkaConsumer;

/// How a consumer reads its records.
#[derive(Debug, Clone)]
pub enum Mode {
    Api {
        method_header: String,
    },
    PublicationData {
        channels_header: String,
        idempotency_key_header: String,
        tags_header_prefix: String,
    },
    ChatEvents,
}

impl Mode {
    pub fn of(k: &KafkaConsumer) -> Mode {
        if k.chat_event_mode.enabled {
            Mode::ChatEvents
        } else if k.publication_data_mode.enabled {
            let p = &k.publication_data_mode;
            Mode::PublicationData {
                channels_header: p.channels_header.clone(),
                idempotency_key_header: p.idempotency_key_header.clone(),
                tags_header_prefix: p.tags_header_prefix.clone(),
            }
        } else {
            Mode::Api {
                method_header: k.method_header.clone(),
            }
        }
    }
}

/// The parts of a Kafka record the decoder reads.
pub struct Record<'a> {
    pub payload: &'a [u8],
    pub headers: Vec<(&'a str, &'a [u8])>,
}

impl Record<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        if name.is_empty() {
            return None;
        }
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn header_str(&self, name: &str) -> Result<Option<&str>, String> {
        self.header(name)
            .map(|v| std::str::from_utf8(v).map_err(|_| format!("header {name} is not UTF-8")))
            .transpose()
    }
}

#[derive(Debug)]
pub enum Action {
    Publish(Publish),
    /// Another state-changing server API method (unsubscribe, disconnect, ...).
    Api {
        method: String,
        params: String,
    },
    /// A read-only method: running it asynchronously means nothing, as in Centrifugo.
    Ignore(&'static str),
}

#[derive(Debug)]
pub struct Publish {
    pub channels: Vec<String>,
    pub data: Box<RawValue>,
    pub idempotency_key: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub skip_history: bool,
    /// The stream position comes from the record's partition and offset (chat events).
    pub sourced: bool,
}

pub fn decode(mode: &Mode, record: &Record<'_>) -> Result<Action, String> {
    match mode {
        Mode::Api { method_header } => match record.header_str(method_header)? {
            Some(method) => command(method, payload_str(record.payload)?),
            None => {
                let cmd: Command<'_> = serde_json::from_slice(record.payload)
                    .map_err(|e| format!("not an API command: {e}"))?;
                command(cmd.method, cmd.payload.map_or("{}", |p| p.get()))
            }
        },
        Mode::PublicationData {
            channels_header,
            idempotency_key_header,
            tags_header_prefix,
        } => {
            let channels: Vec<String> = record
                .header_str(channels_header)?
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            if channels.is_empty() {
                return Err(format!("no channels in header {channels_header}"));
            }
            let mut tags = BTreeMap::new();
            for (k, v) in &record.headers {
                if let Some(tag) = strip_prefix_ignore_case(k, tags_header_prefix) {
                    let v =
                        std::str::from_utf8(v).map_err(|_| format!("header {k} is not UTF-8"))?;
                    tags.insert(tag.to_owned(), v.to_owned());
                }
            }
            Ok(Action::Publish(Publish {
                channels,
                data: json_data(record.payload)?,
                idempotency_key: record
                    .header_str(idempotency_key_header)?
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned),
                tags: (!tags.is_empty()).then_some(tags),
                skip_history: false,
                sourced: false,
            }))
        }
        Mode::ChatEvents => {
            let event = ChatEvent::decode(record.payload).map_err(|e| e.to_string())?;
            Ok(Action::Publish(Publish {
                channels: vec![event.channel()],
                // Clients get the envelope exactly as produced.
                data: json_data(record.payload)?,
                // The event id is stable across a producer's retries, so a record produced
                // twice is delivered once.
                idempotency_key: Some(event.event_id),
                tags: None,
                skip_history: false,
                sourced: true,
            }))
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() || s.len() <= prefix.len() {
        return None;
    }
    let (head, tail) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(tail)
}

fn payload_str(payload: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(payload).map_err(|_| "payload is not UTF-8".to_owned())
}

fn json_data(payload: &[u8]) -> Result<Box<RawValue>, String> {
    serde_json::from_slice::<Box<RawValue>>(payload)
        .map_err(|e| format!("payload is not JSON (the JSON protocol carries only JSON): {e}"))
}

#[derive(Deserialize)]
struct Command<'a> {
    #[serde(borrow)]
    method: &'a str,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct PublishParams {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    channels: Vec<String>,
    data: Option<Box<RawValue>>,
    #[serde(default)]
    b64data: String,
    #[serde(default)]
    skip_history: bool,
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    idempotency_key: String,
}

fn command(method: &str, params: &str) -> Result<Action, String> {
    match method {
        "publish" | "broadcast" => {
            let p: PublishParams =
                serde_json::from_str(params).map_err(|e| format!("bad {method} params: {e}"))?;
            let channels = if method == "publish" {
                vec![p.channel]
                    .into_iter()
                    .filter(|c| !c.is_empty())
                    .collect()
            } else {
                p.channels
            };
            if channels.is_empty() || channels.iter().any(String::is_empty) {
                return Err(format!("{method}: a channel is required"));
            }
            if !p.b64data.is_empty() {
                return Err(format!(
                    "{method}: b64data cannot reach JSON-protocol clients"
                ));
            }
            let data = p
                .data
                .ok_or_else(|| format!("{method}: data is required"))?;
            Ok(Action::Publish(Publish {
                channels,
                data,
                idempotency_key: Some(p.idempotency_key).filter(|k| !k.is_empty()),
                tags: p.tags,
                skip_history: p.skip_history,
                sourced: false,
            }))
        }
        "subscribe" | "unsubscribe" | "disconnect" | "refresh" | "history_remove" => {
            Ok(Action::Api {
                method: method.to_owned(),
                params: params.to_owned(),
            })
        }
        "presence" | "presence_stats" | "history" | "channels" | "info" => {
            Ok(Action::Ignore("read-only method"))
        }
        "batch" => Err("batch is not supported by asynchronous consumers".into()),
        other => Err(format!("unknown method {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Mode {
        Mode::Api {
            method_header: "centrifugo-method".into(),
        }
    }

    fn data_mode() -> Mode {
        Mode::PublicationData {
            channels_header: "centrifugo-channels".into(),
            idempotency_key_header: "centrifugo-idempotency-key".into(),
            tags_header_prefix: "centrifugo-tag-".into(),
        }
    }

    fn rec<'a>(payload: &'a str, headers: &[(&'a str, &'a str)]) -> Record<'a> {
        Record {
            payload: payload.as_bytes(),
            headers: headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect(),
        }
    }

    fn publish(a: Result<Action, String>) -> Publish {
        match a {
            Ok(Action::Publish(p)) => p,
            other => panic!("expected a publish, got {other:?}"),
        }
    }

    #[test]
    fn api_commands_in_the_payload_or_with_a_method_header() {
        let p = publish(decode(
            &api(),
            &rec(
                r#"{"method":"publish","payload":{"channel":"news","data":{"text":"hi"},"idempotency_key":"k1","tags":{"a":"b"}}}"#,
                &[],
            ),
        ));
        assert_eq!(p.channels, vec!["news"]);
        assert_eq!(p.data.get(), r#"{"text":"hi"}"#);
        assert_eq!(p.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(p.tags.unwrap()["a"], "b");
        let p = publish(decode(
            &api(),
            &rec(
                r#"{"method":"broadcast","payload":{"channels":["a","b"],"data":1}}"#,
                &[],
            ),
        ));
        assert_eq!((p.channels.len(), p.idempotency_key), (2, None));
        let p = publish(decode(
            &api(),
            &rec(
                r#"{"channel":"c","data":[1]}"#,
                &[("Centrifugo-Method", "publish")],
            ),
        ));
        assert_eq!(p.channels, vec!["c"]);
        assert!(matches!(
            decode(&api(), &rec(r#"{"method":"disconnect","payload":{"user":"u"}}"#, &[])),
            Ok(Action::Api { ref method, .. }) if method == "disconnect"
        ));
        assert!(matches!(
            decode(&api(), &rec(r#"{"method":"presence","payload":{}}"#, &[])),
            Ok(Action::Ignore(_))
        ));
    }

    #[test]
    fn bad_records_get_a_reason() {
        for (payload, want) in [
            ("not json", "not an API command"),
            (r#"{"payload":{}}"#, "not an API command"),
            (r#"{"method":"nope","payload":{}}"#, "unknown method"),
            (r#"{"method":"batch","payload":{}}"#, "not supported"),
            (
                r#"{"method":"publish","payload":{"data":1}}"#,
                "channel is required",
            ),
            (
                r#"{"method":"publish","payload":{"channel":"c"}}"#,
                "data is required",
            ),
            (
                r#"{"method":"publish","payload":{"channel":"c","b64data":"AA=="}}"#,
                "b64data",
            ),
            (
                r#"{"method":"broadcast","payload":{"channels":["a",""],"data":1}}"#,
                "channel",
            ),
        ] {
            let err = decode(&api(), &rec(payload, &[])).unwrap_err();
            assert!(err.contains(want), "{payload}: {err}");
        }
    }

    #[test]
    fn publication_data_mode_reads_headers() {
        let p = publish(decode(
            &data_mode(),
            &rec(
                r#"{"x":1}"#,
                &[
                    ("centrifugo-channels", "a, b,"),
                    ("centrifugo-idempotency-key", "id-7"),
                    ("centrifugo-tag-kind", "note"),
                    ("other", "ignored"),
                ],
            ),
        ));
        assert_eq!(p.channels, vec!["a", "b"]);
        assert_eq!(p.idempotency_key.as_deref(), Some("id-7"));
        assert_eq!(
            p.tags.unwrap().into_iter().collect::<Vec<_>>(),
            vec![("kind".into(), "note".into())]
        );
        let err = decode(&data_mode(), &rec(r#"{"x":1}"#, &[])).unwrap_err();
        assert!(err.contains("no channels"), "{err}");
        let err = decode(&data_mode(), &rec("{oops", &[("centrifugo-channels", "a")])).unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
    }

    #[test]
    fn chat_events_go_to_their_chat_channel() {
        let ev = r#"{"v":1,"event_id":"01JD3Q6Z4X5N8R2T7V9W0YBC1F","chat_id":"42","ts":1,"type":"message.deleted","data":{"message_id":"01JD3Q6Z4X5N8R2T7V9W0YBC1E"}}"#;
        let p = publish(decode(&Mode::ChatEvents, &rec(ev, &[])));
        assert_eq!(p.channels, vec!["chat:42"]);
        assert_eq!(p.data.get(), ev);
        assert_eq!(
            p.idempotency_key.as_deref(),
            Some("01JD3Q6Z4X5N8R2T7V9W0YBC1F")
        );
        assert!(p.sourced);
        let err = decode(&Mode::ChatEvents, &rec(r#"{"v":1}"#, &[])).unwrap_err();
        assert!(err.contains("not a chat event"), "{err}");
    }
}
