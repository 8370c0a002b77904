//! The client side of the protocols the harness speaks.
//!
//! Each protocol is a small state machine: [`Wire::opening`] is what to send once the socket
//! is open, [`Wire::on_message`] turns one WebSocket message into [`Event`]s and may ask to
//! send replies (a subscribe after Pusher's handshake, an answer to an application ping).

pub mod centrifugo;
pub mod centrifugo_protobuf;
pub mod delta;
pub mod pusher;

use tokio_tungstenite::tungstenite::Message;

use crate::cli::Protocol;
use crate::payload::Payload;

/// Something a server message meant for the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The subscription is confirmed; the connection counts as connected.
    Subscribed,
    Publication(Payload),
    /// The server refused the connect or the subscribe.
    Refused(String),
    /// A server message the harness could not make sense of.
    Garbled(String),
}

/// One connection's protocol state.
pub enum Wire {
    Centrifugo(centrifugo::State),
    CentrifugoProtobuf(centrifugo_protobuf::State),
    Pusher(pusher::State),
}

impl Wire {
    /// `delta`: subscribe with fossil delta compression (Centrifugo protocols).
    pub fn new(protocol: Protocol, token: Option<String>, channel: String, delta: bool) -> Self {
        match protocol {
            Protocol::Centrifugo => Wire::Centrifugo(centrifugo::State::new(token, channel, delta)),
            Protocol::CentrifugoProtobuf => {
                Wire::CentrifugoProtobuf(centrifugo_protobuf::State::new(token, channel, delta))
            }
            Protocol::Pusher => Wire::Pusher(pusher::State::new(channel)),
        }
    }

    /// The URL to dial for `base`.
    pub fn url(protocol: Protocol, base: &str, pusher_key: Option<&str>) -> String {
        match protocol {
            Protocol::Centrifugo | Protocol::CentrifugoProtobuf => base.to_string(),
            Protocol::Pusher => pusher::url(base, pusher_key.unwrap_or("app-key")),
        }
    }

    /// The WebSocket subprotocol to ask for.
    pub fn subprotocol(protocol: Protocol) -> Option<&'static str> {
        (protocol == Protocol::CentrifugoProtobuf).then_some("centrifuge-protobuf")
    }

    /// What to send as soon as the WebSocket is open.
    pub fn opening(&mut self) -> Option<Message> {
        match self {
            Wire::Centrifugo(s) => Some(Message::text(s.opening())),
            Wire::CentrifugoProtobuf(s) => Some(Message::binary(s.opening())),
            Wire::Pusher(_) => None,
        }
    }

    /// Handles one data message; events go to `events`, replies to `replies`. A message of
    /// the wrong kind (binary for JSON, text for Protobuf) is garbled.
    pub fn on_message(
        &mut self,
        msg: &Message,
        events: &mut Vec<Event>,
        replies: &mut Vec<Message>,
    ) {
        let mut texts = Vec::new();
        match (self, msg) {
            (Wire::Centrifugo(s), Message::Text(t)) => s.on_text(t.as_str(), events, &mut texts),
            (Wire::Pusher(s), Message::Text(t)) => s.on_text(t.as_str(), events, &mut texts),
            (Wire::CentrifugoProtobuf(s), Message::Binary(b)) => {
                let mut binary = Vec::new();
                s.on_binary(b, events, &mut binary);
                replies.extend(binary.into_iter().map(Message::binary));
            }
            (_, other) => events.push(Event::Garbled(format!("unexpected {} bytes", other.len()))),
        }
        replies.extend(texts.into_iter().map(Message::text));
    }
}
