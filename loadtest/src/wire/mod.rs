//! The client side of the two protocols the harness speaks.
//!
//! Each protocol is a small state machine: [`Wire::opening`] is what to send once the socket
//! is open, [`Wire::on_text`] turns one WebSocket text message into [`Event`]s and may ask to
//! send replies (a subscribe after Pusher's handshake, an answer to an application ping).

pub mod centrifugo;
pub mod pusher;

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
    Pusher(pusher::State),
}

impl Wire {
    pub fn new(protocol: Protocol, token: Option<String>, channel: String) -> Self {
        match protocol {
            Protocol::Centrifugo => Wire::Centrifugo(centrifugo::State::new(token, channel)),
            Protocol::Pusher => Wire::Pusher(pusher::State::new(channel)),
        }
    }

    /// The URL to dial for `base`.
    pub fn url(protocol: Protocol, base: &str, pusher_key: Option<&str>) -> String {
        match protocol {
            Protocol::Centrifugo => base.to_string(),
            Protocol::Pusher => pusher::url(base, pusher_key.unwrap_or("app-key")),
        }
    }

    /// What to send as soon as the WebSocket is open.
    pub fn opening(&mut self) -> Option<String> {
        match self {
            Wire::Centrifugo(s) => Some(s.opening()),
            Wire::Pusher(_) => None,
        }
    }

    /// Handles one text message; events go to `events`, replies to `replies`.
    pub fn on_text(&mut self, text: &str, events: &mut Vec<Event>, replies: &mut Vec<String>) {
        match self {
            Wire::Centrifugo(s) => s.on_text(text, events, replies),
            Wire::Pusher(s) => s.on_text(text, events, replies),
        }
    }
}
