//! Centrifugo client protocol v2 in Protobuf: the same exchange as [`super::centrifugo`]
//! (connect and subscribe in one message, pushes in, empty pings answered with an empty
//! command), in length-delimited binary `Command`s and `Reply`s. The types are Chorus's own
//! generated ones, built from Centrifugo's `client.proto`.

use chorus_protocol::proto::client::{Command, ConnectRequest, Reply, SubscribeRequest};
use prost::Message as _;

use super::delta::Base;
use super::Event;
use crate::payload::Payload;

const CONNECT_ID: u32 = 1;
const SUBSCRIBE_ID: u32 = 2;

pub struct State {
    token: Option<String>,
    channel: String,
    delta: Option<Base>,
}

/// One empty command, length-delimited: the answer to a server ping.
pub const PONG: &[u8] = &[0];

impl State {
    pub fn new(token: Option<String>, channel: String, delta: bool) -> Self {
        Self {
            token,
            channel,
            delta: delta.then(Base::default),
        }
    }

    pub fn opening(&mut self) -> Vec<u8> {
        let connect = Command {
            id: CONNECT_ID,
            connect: Some(ConnectRequest {
                token: self.token.take().unwrap_or_default(),
                name: "chorus-loadtest".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let subscribe = Command {
            id: SUBSCRIBE_ID,
            subscribe: Some(SubscribeRequest {
                channel: self.channel.clone(),
                delta: if self.delta.is_some() {
                    "fossil".into()
                } else {
                    String::new()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut out = connect.encode_length_delimited_to_vec();
        out.extend(subscribe.encode_length_delimited_to_vec());
        out
    }

    pub fn on_binary(
        &mut self,
        mut buf: &[u8],
        events: &mut Vec<Event>,
        replies: &mut Vec<Vec<u8>>,
    ) {
        while !buf.is_empty() {
            let reply = match Reply::decode_length_delimited(&mut buf) {
                Ok(r) => r,
                Err(e) => {
                    events.push(Event::Garbled(format!("protobuf: {e}")));
                    return;
                }
            };
            if let Some(err) = reply.error {
                events.push(Event::Refused(format!("{} {}", err.code, err.message)));
            } else if let Some(push) = reply.push {
                if let Some(p) = push.r#pub {
                    let payload = match self.delta.as_mut() {
                        Some(base) => base.next(&p.data, p.delta),
                        None => {
                            serde_json::from_slice::<Payload>(&p.data).map_err(|e| e.to_string())
                        }
                    };
                    match payload {
                        Ok(payload) => events.push(Event::Publication(payload)),
                        Err(e) => events.push(Event::Garbled(format!("publication data: {e}"))),
                    }
                }
            } else if reply.id == SUBSCRIBE_ID && reply.subscribe.is_some() {
                events.push(Event::Subscribed);
            } else if reply == Reply::default() {
                replies.push(PONG.to_vec());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::proto::client::{Publication, Push, SubscribeResult};

    #[test]
    fn reads_batched_replies_pushes_and_pings() {
        let mut s = State::new(Some("jwt".into()), "c".into(), false);
        let opening = s.opening();
        let mut buf = &opening[..];
        let connect = Command::decode_length_delimited(&mut buf).expect("connect");
        assert_eq!(connect.connect.expect("connect").token, "jwt");
        let subscribe = Command::decode_length_delimited(&mut buf).expect("subscribe");
        assert_eq!(subscribe.subscribe.expect("subscribe").channel, "c");

        let mut msg = Reply {
            id: SUBSCRIBE_ID,
            subscribe: Some(SubscribeResult::default()),
            ..Default::default()
        }
        .encode_length_delimited_to_vec();
        msg.extend(
            Reply {
                push: Some(Push {
                    channel: "c".into(),
                    r#pub: Some(Publication {
                        data: br#"{"t":5,"s":1,"p":"xx"}"#.to_vec().into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .encode_length_delimited_to_vec(),
        );
        msg.extend(Reply::default().encode_length_delimited_to_vec());
        let (mut ev, mut re) = (Vec::new(), Vec::new());
        s.on_binary(&msg, &mut ev, &mut re);
        assert_eq!(
            ev,
            vec![
                Event::Subscribed,
                Event::Publication(Payload { t: 5, s: 1 })
            ]
        );
        assert_eq!(re, vec![PONG.to_vec()]);

        let (mut ev, mut re) = (Vec::new(), Vec::new());
        s.on_binary(&[0x05, 0x01], &mut ev, &mut re);
        assert!(matches!(ev[0], Event::Garbled(_)));
    }
}
