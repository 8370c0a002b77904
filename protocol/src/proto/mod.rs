//! Centrifugo client protocol v2, Protobuf flavour (the `centrifuge-protobuf` WebSocket
//! subprotocol).
//!
//! A binary message carries one or more `Command`s (from the client) or `Reply`s (from the
//! server), each prefixed by its length as a varint. Commands decode into the same
//! [`Command`] the JSON flavour gives, so the hub handles both alike; replies and pushes are
//! built from the same result types, each of which knows its place in a `Reply`
//! ([`ToReply`], [`ToPush`]).
//!
//! Payloads (`data`, `info`) are bytes in Protobuf and raw JSON in Chorus, which stores and
//! forwards JSON: a Protobuf client's payload must be a JSON document, or the command is a
//! bad request. Subscribers of either protocol then get the same document.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod client;

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message;
use serde_json::value::RawValue;

use crate::codes::ProtocolError;
use crate::frame::{
    ChannelRequest, ClientInfo, Command, ConnectRequest, ConnectResult, Data, DecodeError,
    DisconnectPush, Empty, HistoryRequest, HistoryResult, JoinLeave, Method, PresenceResult,
    PresenceStatsResult, Publication, PublishRequest, RefreshRequest, RefreshResult, RpcRequest,
    RpcResult, SendRequest, StreamPosition, SubRefreshRequest, SubRefreshResult, SubscribeRequest,
    SubscribeResult, UnsubscribePush,
};

/// An `/emulation` request body in Protobuf (`application/octet-stream`): the node and
/// session a client's commands are for, and the commands, length-delimited as usual.
pub fn decode_emulation_request(body: &[u8]) -> Result<client::EmulationRequest, DecodeError> {
    Ok(client::EmulationRequest::decode(body)?)
}

/// Decodes every length-delimited command in one binary message.
pub fn decode_commands(frame: &[u8]) -> Result<Vec<Command>, DecodeError> {
    let mut buf = frame;
    let mut out = Vec::with_capacity(1);
    while !buf.is_empty() {
        let raw = client::Command::decode_length_delimited(&mut buf)?;
        out.push(command(raw)?);
    }
    Ok(out)
}

/// A payload as raw JSON; empty bytes are no payload.
fn json(field: &'static str, bytes: &[u8]) -> Result<Option<Data>, DecodeError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotJson(field))?;
    RawValue::from_string(text.to_owned())
        .map(Some)
        .map_err(|_| DecodeError::NotJson(field))
}

fn subscribe_request(r: client::SubscribeRequest) -> Result<SubscribeRequest, DecodeError> {
    Ok(SubscribeRequest {
        data: json("subscribe.data", &r.data)?,
        channel: r.channel,
        token: r.token,
        recover: r.recover,
        epoch: r.epoch,
        offset: r.offset,
        positioned: r.positioned,
        recoverable: r.recoverable,
        join_leave: r.join_leave,
        flag: r.flag as u64,
        delta: r.delta,
        tf: r.tf.map(filter_node),
    })
}

fn filter_node(f: client::FilterNode) -> crate::filter::FilterNode {
    crate::filter::FilterNode {
        op: f.op,
        key: f.key,
        cmp: f.cmp,
        val: f.val,
        vals: f.vals,
        nodes: f.nodes.into_iter().map(filter_node).collect(),
    }
}

fn command(c: client::Command) -> Result<Command, DecodeError> {
    let id = c.id;
    let method = if let Some(r) = c.connect {
        let mut subs = BTreeMap::new();
        for (channel, s) in r.subs {
            subs.insert(channel, subscribe_request(s)?);
        }
        Method::Connect(ConnectRequest {
            token: r.token,
            data: json("connect.data", &r.data)?,
            subs,
            name: r.name,
            version: r.version,
        })
    } else if let Some(r) = c.subscribe {
        Method::Subscribe(subscribe_request(r)?)
    } else if let Some(r) = c.unsubscribe {
        Method::Unsubscribe(ChannelRequest { channel: r.channel })
    } else if let Some(r) = c.publish {
        Method::Publish(PublishRequest {
            data: json("publish.data", &r.data)?,
            channel: r.channel,
        })
    } else if let Some(r) = c.presence {
        Method::Presence(ChannelRequest { channel: r.channel })
    } else if let Some(r) = c.presence_stats {
        Method::PresenceStats(ChannelRequest { channel: r.channel })
    } else if let Some(r) = c.history {
        Method::History(HistoryRequest {
            channel: r.channel,
            limit: r.limit,
            since: r.since.map(|s| StreamPosition {
                offset: s.offset,
                epoch: s.epoch,
            }),
            reverse: r.reverse,
        })
    } else if let Some(r) = c.send {
        Method::Send(SendRequest {
            data: json("send.data", &r.data)?,
        })
    } else if let Some(r) = c.rpc {
        Method::Rpc(RpcRequest {
            data: json("rpc.data", &r.data)?,
            method: r.method,
        })
    } else if let Some(r) = c.refresh {
        Method::Refresh(RefreshRequest { token: r.token })
    } else if let Some(r) = c.sub_refresh {
        Method::SubRefresh(SubRefreshRequest {
            channel: r.channel,
            token: r.token,
        })
    } else if id == 0 {
        Method::Pong
    } else {
        return Err(DecodeError::UnknownMethod(id));
    };
    Ok(Command { id, method })
}

fn bytes_of(raw: &RawValue) -> Bytes {
    Bytes::copy_from_slice(raw.get().as_bytes())
}

fn opt_bytes<R: AsRef<RawValue>>(raw: Option<&R>) -> Bytes {
    raw.map_or_else(Bytes::new, |r| bytes_of(r.as_ref()))
}

fn client_info(i: &ClientInfo) -> client::ClientInfo {
    client::ClientInfo {
        user: i.user.clone(),
        client: i.client.clone(),
        conn_info: opt_bytes(i.conn_info.as_ref()),
        chan_info: opt_bytes(i.chan_info.as_ref()),
    }
}

/// A publication as Protobuf.
pub fn publication(p: &Publication) -> client::Publication {
    client::Publication {
        data: bytes_of(&p.data),
        info: p.info.as_ref().map(client_info),
        offset: p.offset,
        tags: p
            .tags
            .as_ref()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        delta: p.delta,
        ..Default::default()
    }
}

fn subscribe_result(r: &SubscribeResult) -> client::SubscribeResult {
    client::SubscribeResult {
        expires: r.expires,
        ttl: r.ttl,
        recoverable: r.recoverable,
        epoch: r.epoch.clone(),
        publications: r.publications.iter().map(|p| publication(p)).collect(),
        recovered: r.recovered,
        offset: r.offset,
        positioned: r.positioned,
        data: opt_bytes(r.data.as_ref()),
        was_recovering: r.was_recovering,
        delta: r.delta,
        ..Default::default()
    }
}

/// A result that is the body of a reply, in the field its method names.
pub trait ToReply {
    fn set(&self, method: &str, reply: &mut client::Reply);
}

/// A body that is a push, in the field its kind names.
pub trait ToPush {
    fn set(&self, kind: &str, push: &mut client::Push);
}

impl ToReply for ConnectResult {
    fn set(&self, _: &str, reply: &mut client::Reply) {
        reply.connect = Some(client::ConnectResult {
            client: self.client.clone(),
            version: self.version.clone(),
            expires: self.expires,
            ttl: self.ttl,
            data: opt_bytes(self.data.as_ref()),
            subs: self
                .subs
                .iter()
                .map(|(k, v)| (k.clone(), subscribe_result(v)))
                .collect(),
            ping: self.ping,
            pong: self.pong,
            session: self.session.clone(),
            node: self.node.clone(),
            ..Default::default()
        });
    }
}

impl ToReply for SubscribeResult {
    fn set(&self, _: &str, reply: &mut client::Reply) {
        reply.subscribe = Some(subscribe_result(self));
    }
}

impl ToReply for Empty {
    fn set(&self, method: &str, reply: &mut client::Reply) {
        match method {
            "publish" => reply.publish = Some(client::PublishResult {}),
            "unsubscribe" => reply.unsubscribe = Some(client::UnsubscribeResult {}),
            "ping" => reply.ping = Some(client::PingResult {}),
            other => debug_assert!(false, "no empty result for {other}"),
        }
    }
}

impl ToReply for HistoryResult {
    fn set(&self, _: &str, reply: &mut client::Reply) {
        reply.history = Some(client::HistoryResult {
            publications: self.publications.iter().map(|p| publication(p)).collect(),
            epoch: self.epoch.clone(),
            offset: self.offset,
        });
    }
}

impl ToReply for PresenceResult {
    fn set(&self, _: &str, reply: &mut client::Reply) {
        reply.presence = Some(client::PresenceResult {
            presence: self
                .presence
                .iter()
                .map(|(k, v)| (k.clone(), client_info(v)))
                .collect(),
        });
    }
}

impl ToReply for PresenceStatsResult {
    fn set(&self, _: &str, reply: &mut client::Reply) {
        reply.presence_stats = Some(client::PresenceStatsResult {
            num_clients: self.num_clients,
            num_users: self.num_users,
        });
    }
}

impl ToReply for RefreshResult {
    fn set(&self, _: &str, reply: &mut client::Reply) {
        reply.refresh = Some(client::RefreshResult {
            client: self.client.clone(),
            version: self.version.clone(),
            expires: self.expires,
            ttl: self.ttl,
        });
    }
}

impl ToReply for SubRefreshResult {
    fn set(&self, _: &str, reply: &mut client::Reply) {
        reply.sub_refresh = Some(client::SubRefreshResult {
            expires: self.expires,
            ttl: self.ttl,
            ..Default::default()
        });
    }
}

impl ToReply for RpcResult {
    fn set(&self, _: &str, reply: &mut client::Reply) {
        reply.rpc = Some(client::RpcResult {
            data: opt_bytes(self.data.as_ref()),
        });
    }
}

impl ToReply for ProtocolError {
    fn set(&self, _: &str, reply: &mut client::Reply) {
        reply.error = Some(client::Error {
            code: self.code,
            message: self.message.clone(),
            temporary: self.temporary,
        });
    }
}

impl ToPush for Publication {
    fn set(&self, _: &str, push: &mut client::Push) {
        push.r#pub = Some(publication(self));
    }
}

impl ToPush for JoinLeave<'_> {
    fn set(&self, kind: &str, push: &mut client::Push) {
        let info = Some(client_info(self.info));
        if kind == "leave" {
            push.leave = Some(client::Leave { info });
        } else {
            push.join = Some(client::Join { info });
        }
    }
}

impl ToPush for UnsubscribePush<'_> {
    fn set(&self, _: &str, push: &mut client::Push) {
        push.unsubscribe = Some(client::Unsubscribe {
            code: self.code,
            reason: self.reason.to_owned(),
        });
    }
}

impl ToPush for DisconnectPush<'_> {
    fn set(&self, _: &str, push: &mut client::Push) {
        push.disconnect = Some(client::Disconnect {
            code: self.code,
            reason: self.reason.to_owned(),
            reconnect: self.reconnect,
        });
    }
}

/// A server-side subscription made after connect (the server API's `subscribe`).
impl ToPush for SubscribeResult {
    fn set(&self, _: &str, push: &mut client::Push) {
        push.subscribe = Some(client::Subscribe {
            recoverable: self.recoverable,
            epoch: self.epoch.clone(),
            offset: self.offset,
            positioned: self.positioned,
            data: opt_bytes(self.data.as_ref()),
        });
    }
}

fn delimited(reply: &client::Reply) -> Vec<u8> {
    reply.encode_length_delimited_to_vec()
}

/// `{id, <method>: result}` as one length-delimited `Reply`.
pub fn encode_reply<T: ToReply + ?Sized>(id: u32, method: &str, result: &T) -> Vec<u8> {
    let mut reply = client::Reply {
        id,
        ..Default::default()
    };
    result.set(method, &mut reply);
    delimited(&reply)
}

/// An error reply.
pub fn encode_error(id: u32, error: &ProtocolError) -> Vec<u8> {
    encode_reply(id, "error", error)
}

/// A push for `channel` as one length-delimited `Reply`.
pub fn encode_push<T: ToPush + ?Sized>(channel: &str, kind: &str, body: &T) -> Vec<u8> {
    let mut push = client::Push {
        channel: channel.to_owned(),
        ..Default::default()
    };
    body.set(kind, &mut push);
    delimited(&client::Reply {
        push: Some(push),
        ..Default::default()
    })
}

/// A publication push whose data is `data` (a fossil delta when `delta`), not the
/// publication's own document.
pub fn encode_publication_push(
    channel: &str,
    p: &Publication,
    data: Bytes,
    delta: bool,
) -> Vec<u8> {
    let mut publication = publication(p);
    publication.data = data;
    publication.delta = delta;
    delimited(&client::Reply {
        push: Some(client::Push {
            channel: channel.to_owned(),
            r#pub: Some(publication),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The server ping: an empty `Reply`, length 0.
pub const PING_FRAME: &[u8] = &[0];

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn delimited_command(c: &client::Command) -> Vec<u8> {
        c.encode_length_delimited_to_vec()
    }

    #[test]
    fn decodes_batched_commands_into_the_json_flavours_types() {
        let mut frame = delimited_command(&client::Command {
            id: 1,
            connect: Some(client::ConnectRequest {
                token: "t".into(),
                data: Bytes::from_static(br#"{"a":1}"#),
                ..Default::default()
            }),
            ..Default::default()
        });
        frame.extend(delimited_command(&client::Command {
            id: 2,
            subscribe: Some(client::SubscribeRequest {
                channel: "news".into(),
                recover: true,
                offset: 5,
                epoch: "ab".into(),
                delta: "fossil".into(),
                ..Default::default()
            }),
            ..Default::default()
        }));
        frame.extend(delimited_command(&client::Command::default()));
        let cmds = decode_commands(&frame).unwrap();
        assert_eq!(cmds.len(), 3);
        match &cmds[0].method {
            Method::Connect(c) => {
                assert_eq!(c.token, "t");
                assert_eq!(c.data.as_ref().unwrap().get(), r#"{"a":1}"#);
            }
            other => panic!("unexpected {other:?}"),
        }
        match &cmds[1].method {
            Method::Subscribe(s) => assert_eq!(
                (
                    s.channel.as_str(),
                    s.recover,
                    s.offset,
                    s.epoch.as_str(),
                    s.delta.as_str()
                ),
                ("news", true, 5, "ab", "fossil")
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(cmds[2].method, Method::Pong));
    }

    #[test]
    fn a_truncated_frame_an_unknown_method_or_a_payload_that_is_not_json_is_refused() {
        let whole = delimited_command(&client::Command {
            id: 3,
            publish: Some(client::PublishRequest {
                channel: "c".into(),
                data: Bytes::from_static(b"{}"),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(matches!(
            decode_commands(&whole[..whole.len() - 1]),
            Err(DecodeError::Protobuf(_))
        ));
        let unknown = delimited_command(&client::Command {
            id: 4,
            ..Default::default()
        });
        assert!(matches!(
            decode_commands(&unknown),
            Err(DecodeError::UnknownMethod(4))
        ));
        let binary = delimited_command(&client::Command {
            id: 5,
            publish: Some(client::PublishRequest {
                channel: "c".into(),
                data: Bytes::from_static(&[0xff, 0x00]),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(matches!(
            decode_commands(&binary),
            Err(DecodeError::NotJson("publish.data"))
        ));
    }

    #[test]
    fn replies_and_pushes_decode_as_the_sdks_read_them() {
        let bytes = encode_reply(4, "publish", &Empty {});
        let reply = client::Reply::decode_length_delimited(&bytes[..]).unwrap();
        assert_eq!((reply.id, reply.publish.is_some()), (4, true));

        let e: ProtocolError = crate::codes::ERROR_PERMISSION_DENIED.into();
        let reply = client::Reply::decode_length_delimited(&encode_error(2, &e)[..]).unwrap();
        assert_eq!(reply.error.unwrap().code, 103);

        let info = ClientInfo {
            user: "u".into(),
            client: "c".into(),
            conn_info: Some(Arc::from(
                RawValue::from_string("{\"n\":1}".into()).unwrap(),
            )),
            chan_info: None,
        };
        let p = Publication {
            data: RawValue::from_string("{\"x\":1}".into()).unwrap(),
            info: Some(info),
            offset: 9,
            tags: None,
            delta: false,
        };
        let push = client::Reply::decode_length_delimited(&encode_push("news", "pub", &p)[..])
            .unwrap()
            .push
            .unwrap();
        assert_eq!(push.channel, "news");
        let got = push.r#pub.unwrap();
        assert_eq!((&got.data[..], got.offset), (&b"{\"x\":1}"[..], 9));
        assert_eq!(&got.info.unwrap().conn_info[..], b"{\"n\":1}");

        assert_eq!(
            client::Reply::decode_length_delimited(PING_FRAME).unwrap(),
            client::Reply::default()
        );
    }
}
