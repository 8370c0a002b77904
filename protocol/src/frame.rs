//! Centrifugo client protocol v2, JSON flavour (the Protobuf one is [`crate::proto`]).
//!
//! A WebSocket message carries one or more commands separated by `\n`; the server answers
//! with replies and pushes framed the same way. A command sets `id` and exactly one method
//! field; an empty command `{}` is a pong. `data` fields stay raw JSON ([`RawValue`]) so the
//! hub forwards them without re-encoding.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::codes::ProtocolError;

/// Raw JSON carried through untouched.
pub type Data = Box<RawValue>;

/// Why a frame could not be decoded; the connection is closed with "bad request".
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed command json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("command {0} names no known method")]
    UnknownMethod(u32),
    #[error("frame is not utf-8")]
    NotUtf8,
    #[error("malformed protobuf command: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Chorus carries payloads as JSON; a Protobuf client's must be a JSON document too.
    #[error("{0} is not a JSON document")]
    NotJson(&'static str),
}

/// One decoded client command.
#[derive(Debug)]
pub struct Command {
    pub id: u32,
    pub method: Method,
}

/// The method a command asks for, with its request.
#[derive(Debug)]
pub enum Method {
    /// The empty command, a client's answer to a server ping.
    Pong,
    Connect(ConnectRequest),
    Subscribe(SubscribeRequest),
    Unsubscribe(ChannelRequest),
    Publish(PublishRequest),
    Presence(ChannelRequest),
    PresenceStats(ChannelRequest),
    History(HistoryRequest),
    Send(SendRequest),
    Rpc(RpcRequest),
    Refresh(RefreshRequest),
    SubRefresh(SubRefreshRequest),
}

impl Method {
    /// A short label for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Pong => "pong",
            Method::Connect(_) => "connect",
            Method::Subscribe(_) => "subscribe",
            Method::Unsubscribe(_) => "unsubscribe",
            Method::Publish(_) => "publish",
            Method::Presence(_) => "presence",
            Method::PresenceStats(_) => "presence_stats",
            Method::History(_) => "history",
            Method::Send(_) => "send",
            Method::Rpc(_) => "rpc",
            Method::Refresh(_) => "refresh",
            Method::SubRefresh(_) => "sub_refresh",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ConnectRequest {
    #[serde(default)]
    pub token: String,
    pub data: Option<Data>,
    /// Server-side subscriptions the client wants recovered, by channel.
    #[serde(default)]
    pub subs: BTreeMap<String, SubscribeRequest>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct SubscribeRequest {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub recover: bool,
    #[serde(default)]
    pub epoch: String,
    #[serde(default)]
    pub offset: u64,
    pub data: Option<Data>,
    #[serde(default)]
    pub positioned: bool,
    #[serde(default)]
    pub recoverable: bool,
    #[serde(default)]
    pub join_leave: bool,
    /// Bit flags; see [`SUBSCRIBE_FLAG_REJECT_UNRECOVERED`].
    #[serde(default)]
    pub flag: u64,
    /// The delta encoding asked for (`fossil`); empty for none.
    #[serde(default)]
    pub delta: String,
    /// Only publications whose tags pass this filter (`allow_tags_filter` namespaces).
    #[serde(default)]
    pub tf: Option<crate::filter::FilterNode>,
}

/// Subscribe flag: fail the subscription with error 112 instead of replying `recovered: false`.
pub const SUBSCRIBE_FLAG_REJECT_UNRECOVERED: u64 = 2;

#[derive(Debug, Default, Deserialize)]
pub struct ChannelRequest {
    #[serde(default)]
    pub channel: String,
}

#[derive(Debug, Deserialize)]
pub struct PublishRequest {
    #[serde(default)]
    pub channel: String,
    pub data: Option<Data>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryRequest {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub limit: i32,
    pub since: Option<StreamPosition>,
    #[serde(default)]
    pub reverse: bool,
}

#[derive(Debug, Deserialize)]
pub struct SendRequest {
    pub data: Option<Data>,
}

#[derive(Debug, Deserialize)]
pub struct RpcRequest {
    pub data: Option<Data>,
    #[serde(default)]
    pub method: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct RefreshRequest {
    #[serde(default)]
    pub token: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct SubRefreshRequest {
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub token: String,
}

/// The wire shape of a command before its method is picked.
#[derive(Deserialize)]
struct RawCommand {
    #[serde(default)]
    id: u32,
    connect: Option<ConnectRequest>,
    subscribe: Option<SubscribeRequest>,
    unsubscribe: Option<ChannelRequest>,
    publish: Option<PublishRequest>,
    presence: Option<ChannelRequest>,
    presence_stats: Option<ChannelRequest>,
    history: Option<HistoryRequest>,
    send: Option<SendRequest>,
    rpc: Option<RpcRequest>,
    refresh: Option<RefreshRequest>,
    sub_refresh: Option<SubRefreshRequest>,
}

impl RawCommand {
    fn into_command(self) -> Result<Command, DecodeError> {
        let id = self.id;
        let method = if let Some(r) = self.connect {
            Method::Connect(r)
        } else if let Some(r) = self.subscribe {
            Method::Subscribe(r)
        } else if let Some(r) = self.unsubscribe {
            Method::Unsubscribe(r)
        } else if let Some(r) = self.publish {
            Method::Publish(r)
        } else if let Some(r) = self.presence {
            Method::Presence(r)
        } else if let Some(r) = self.presence_stats {
            Method::PresenceStats(r)
        } else if let Some(r) = self.history {
            Method::History(r)
        } else if let Some(r) = self.send {
            Method::Send(r)
        } else if let Some(r) = self.rpc {
            Method::Rpc(r)
        } else if let Some(r) = self.refresh {
            Method::Refresh(r)
        } else if let Some(r) = self.sub_refresh {
            Method::SubRefresh(r)
        } else if id == 0 {
            Method::Pong
        } else {
            return Err(DecodeError::UnknownMethod(id));
        };
        Ok(Command { id, method })
    }
}

/// Decodes every command in one WebSocket message. Blank lines are skipped.
pub fn decode_commands(frame: &[u8]) -> Result<Vec<Command>, DecodeError> {
    let text = std::str::from_utf8(frame).map_err(|_| DecodeError::NotUtf8)?;
    let mut out = Vec::with_capacity(1);
    for line in text.split('\n') {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let raw: RawCommand = serde_json::from_str(line)?;
        out.push(raw.into_command()?);
    }
    Ok(out)
}

/// A position in a channel's publication stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
}

/// Who a publication, join or leave is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientInfo {
    pub user: String,
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn_info: Option<Arc<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chan_info: Option<Arc<RawValue>>,
}

/// A message in a channel, as stored in history and as sent to subscribers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Publication {
    pub data: Data,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Set only on a push to a subscriber that negotiated delta compression: `data` is a
    /// fossil delta against the previous publication, not the document.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delta: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct ConnectResult {
    pub client: String,
    pub version: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expires: bool,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub subs: BTreeMap<String, SubscribeResult>,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ping: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pong: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
}

#[derive(Debug, Default, Serialize)]
pub struct SubscribeResult {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expires: bool,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recoverable: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Arc<Publication>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub offset: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub positioned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub was_recovering: bool,
    /// Delta compression was negotiated (`fossil`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delta: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct HistoryResult {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Arc<Publication>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub offset: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct PresenceResult {
    pub presence: BTreeMap<String, ClientInfo>,
}

#[derive(Debug, Default, Serialize)]
pub struct PresenceStatsResult {
    pub num_clients: u32,
    pub num_users: u32,
}

#[derive(Debug, Default, Serialize)]
pub struct RefreshResult {
    pub client: String,
    pub version: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expires: bool,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

#[derive(Debug, Default, Serialize)]
pub struct SubRefreshResult {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expires: bool,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

#[derive(Debug, Default, Serialize)]
pub struct RpcResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
}

/// An empty result object: `{}`.
#[derive(Debug, Default, Serialize)]
pub struct Empty {}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// Encodes a successful reply: `{"id":N,"<method>":<result>}`.
pub fn encode_reply<T: Serialize>(id: u32, method: &str, result: &T) -> String {
    #[derive(Serialize)]
    struct Reply<'a, T> {
        id: u32,
        #[serde(flatten)]
        result: Single<'a, T>,
    }
    serde_json::to_string(&Reply {
        id,
        result: Single {
            key: method,
            value: result,
        },
    })
    .expect("invariant: reply types serialize infallibly")
}

/// Encodes an error reply: `{"id":N,"error":{...}}`.
pub fn encode_error(id: u32, error: &ProtocolError) -> String {
    encode_reply(id, "error", error)
}

/// The server ping: an empty reply.
pub const PING_FRAME: &str = "{}";

/// Encodes a push for a channel: `{"push":{"channel":"..","<kind>":<body>}}`.
pub fn encode_push<T: Serialize>(channel: &str, kind: &str, body: &T) -> String {
    #[derive(Serialize)]
    struct Push<'a, T> {
        #[serde(skip_serializing_if = "str::is_empty")]
        channel: &'a str,
        #[serde(flatten)]
        body: Single<'a, T>,
    }
    #[derive(Serialize)]
    struct Outer<'a, T> {
        push: Push<'a, T>,
    }
    serde_json::to_string(&Outer {
        push: Push {
            channel,
            body: Single {
                key: kind,
                value: body,
            },
        },
    })
    .expect("invariant: push types serialize infallibly")
}

/// Serializes as a one-entry map `{key: value}`, to pick the method field at run time.
struct Single<'a, T> {
    key: &'a str,
    value: &'a T,
}

impl<T: Serialize> Serialize for Single<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.key, self.value)?;
        m.end()
    }
}

/// Body of a `join` or `leave` push.
#[derive(Debug, Serialize)]
pub struct JoinLeave<'a> {
    pub info: &'a ClientInfo,
}

/// Body of an `unsubscribe` push.
#[derive(Debug, Serialize)]
pub struct UnsubscribePush<'a> {
    pub code: u32,
    pub reason: &'a str,
}

/// Body of a `disconnect` push: how a transport without close codes (HTTP-streaming, SSE)
/// tells a client why the server ends its connection, and whether to come back.
#[derive(Debug, Serialize)]
pub struct DisconnectPush<'a> {
    pub code: u32,
    pub reason: &'a str,
    pub reconnect: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_batched_commands() {
        let frame = b"{\"id\":1,\"connect\":{\"token\":\"t\"}}\n{\"id\":2,\"subscribe\":{\"channel\":\"news\",\"recover\":true,\"offset\":5,\"epoch\":\"ab\"}}\n";
        let cmds = decode_commands(frame).unwrap();
        assert_eq!(cmds.len(), 2);
        assert!(matches!(&cmds[0].method, Method::Connect(c) if c.token == "t"));
        match &cmds[1].method {
            Method::Subscribe(s) => {
                assert_eq!(
                    (s.channel.as_str(), s.recover, s.offset, s.epoch.as_str()),
                    ("news", true, 5, "ab")
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn empty_command_is_pong_and_unknown_method_is_an_error() {
        assert!(matches!(
            decode_commands(b"{}").unwrap()[0].method,
            Method::Pong
        ));
        assert!(matches!(
            decode_commands(b"{\"id\":3,\"nope\":{}}"),
            Err(DecodeError::UnknownMethod(3))
        ));
        assert!(matches!(
            decode_commands(b"{\"id\":"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode_commands(&[0xff, 0xfe]),
            Err(DecodeError::NotUtf8)
        ));
    }

    #[test]
    fn publish_data_is_kept_raw() {
        let cmds =
            decode_commands(br#"{"id":7,"publish":{"channel":"c","data":{"a": [1, 2]}}}"#).unwrap();
        match &cmds[0].method {
            Method::Publish(p) => assert_eq!(p.data.as_ref().unwrap().get(), r#"{"a": [1, 2]}"#),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn encodes_replies_and_pushes() {
        assert_eq!(
            encode_reply(4, "publish", &Empty {}),
            r#"{"id":4,"publish":{}}"#
        );
        let e: ProtocolError = crate::codes::ERROR_PERMISSION_DENIED.into();
        assert_eq!(
            encode_error(2, &e),
            r#"{"id":2,"error":{"code":103,"message":"permission denied"}}"#
        );
        let p = Publication {
            data: RawValue::from_string("{\"x\":1}".into()).unwrap(),
            info: None,
            offset: 9,
            tags: None,
            delta: false,
        };
        assert_eq!(
            encode_push("news", "pub", &p),
            r#"{"push":{"channel":"news","pub":{"data":{"x":1},"offset":9}}}"#
        );
    }
}
