//! Server API commands, typed: [`Command::parse`] turns a method name and its JSON params
//! into a [`Command`] (Centrifugo's request shapes), and [`Command::run`] has the node carry
//! it out and returns the result as JSON text. The HTTP API (`api/`) and the Kafka consumer's
//! API mode both parse here; neither runs anything itself. User actions (`subscribe`,
//! `unsubscribe`, `disconnect`, `refresh`) become a [`UserAction`] that the node applies to
//! its own connections and sends to the other nodes.

use std::collections::BTreeMap;

use chorus_protocol::codes::{self, ProtocolError};
use chorus_protocol::frame::{
    Data, HistoryResult, PresenceResult, PresenceStatsResult, StreamPosition,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::action::{Target, UserAction};
use crate::broker::HistoryFilter;
use crate::metrics::Source;
use crate::node::{broker_error, Node};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A Centrifugo error code, reported in the body.
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
}

/// A server API command, parsed.
#[derive(Debug)]
pub enum Command {
    Publish(PublishRequest),
    Broadcast(BroadcastRequest),
    /// On a user's connections, on every node.
    User(UserAction),
    Presence {
        channel: String,
        stats: bool,
    },
    History(HistoryRequest),
    HistoryRemove {
        channel: String,
    },
    Channels {
        pattern: String,
    },
    Info,
    /// Centrifugo PRO's `invalidate_user_tokens`: the user's connection tokens issued before
    /// a time are refused from now on (as expired, so SDKs fetch new ones), on every node.
    InvalidateUserTokens {
        user: String,
        issued_before: i64,
        expire_at: i64,
    },
}

impl Command {
    /// `method` with its JSON `params`: a bad body or a missing field is `BadRequest`, a
    /// method that does not exist `UnknownMethod`.
    pub fn parse(method: &str, params: &str) -> Result<Command, CommandError> {
        Ok(match method {
            "publish" => {
                let req: PublishRequest = parse(params)?;
                required("channel", &req.channel)?;
                Command::Publish(req)
            }
            "broadcast" => {
                let req: BroadcastRequest = parse(params)?;
                if req.channels.is_empty() {
                    return Err(CommandError::BadRequest("channels are required".into()));
                }
                Command::Broadcast(req)
            }
            "subscribe" | "unsubscribe" => {
                let t: UserTarget = parse(params)?;
                required("user", &t.user)?;
                required("channel", &t.channel)?;
                let target = t.target();
                let channel = t.channel;
                Command::User(if method == "subscribe" {
                    UserAction::Subscribe { target, channel }
                } else {
                    UserAction::Unsubscribe { target, channel }
                })
            }
            "disconnect" => {
                let req: DisconnectRequest = parse(params)?;
                required("user", &req.target.user)?;
                let code = match req.disconnect {
                    Some(c) if (3000..5000).contains(&c.code) => c.code,
                    Some(_) => {
                        return Err(CommandError::BadRequest(
                            "disconnect.code must be in 3000..4999".into(),
                        ))
                    }
                    None => codes::DISCONNECT_FORCE_NO_RECONNECT.code,
                };
                Command::User(UserAction::Disconnect {
                    target: req.target.target(),
                    code,
                    whitelist: req.whitelist,
                })
            }
            "refresh" => {
                let req: RefreshRequest = parse(params)?;
                required("user", &req.target.user)?;
                Command::User(UserAction::Refresh {
                    target: req.target.target(),
                    expire_at: req.expire_at.filter(|t| *t > 0),
                    expired: req.expired,
                })
            }
            "presence" | "presence_stats" => {
                let req: ChannelParam = parse(params)?;
                required("channel", &req.channel)?;
                Command::Presence {
                    channel: req.channel,
                    stats: method == "presence_stats",
                }
            }
            "history" => {
                let req: HistoryRequest = parse(params)?;
                required("channel", &req.channel)?;
                Command::History(req)
            }
            "history_remove" => {
                let req: ChannelParam = parse(params)?;
                required("channel", &req.channel)?;
                Command::HistoryRemove {
                    channel: req.channel,
                }
            }
            "invalidate_user_tokens" => {
                let req: InvalidateRequest = parse(params)?;
                required("user", &req.user)?;
                if !req.channel.is_empty() {
                    return Err(CommandError::BadRequest(
                        "channel: invalidating subscription tokens is not supported".into(),
                    ));
                }
                Command::InvalidateUserTokens {
                    user: req.user,
                    issued_before: req
                        .issued_before
                        .filter(|t| *t > 0)
                        .unwrap_or_else(crate::auth::token::now_unix),
                    // Absent: kept for good, as Centrifugo does (a token without exp never
                    // expires by itself).
                    expire_at: req.expire_at.filter(|t| *t > 0).unwrap_or(i64::MAX),
                }
            }
            "channels" => {
                let req: ChannelsRequest = parse(params)?;
                Command::Channels {
                    pattern: req.pattern,
                }
            }
            "info" => Command::Info,
            other => return Err(CommandError::UnknownMethod(other.to_owned())),
        })
    }

    /// Has `node` carry the command out; the result as JSON text.
    pub async fn run(self, node: &Node) -> Result<String, CommandError> {
        match self {
            Command::Publish(req) => publish(node, req).await,
            Command::Broadcast(req) => broadcast(node, req).await,
            Command::User(action) => {
                if let UserAction::Subscribe { channel, .. } = &action {
                    node.channel_options(channel)?;
                }
                // The user may be connected to any node: every other node does the same.
                node.act(action).await;
                Ok("{}".into())
            }
            Command::Presence { channel, stats } => presence(node, &channel, stats).await,
            Command::History(req) => history(node, req).await,
            Command::HistoryRemove { channel } => history_remove(node, &channel).await,
            Command::Channels { pattern } => Ok(channels(node, &pattern).await),
            Command::Info => Ok(info(node)),
            Command::InvalidateUserTokens {
                user,
                issued_before,
                expire_at,
            } => {
                node.revoked
                    .invalidate(&user, issued_before, expire_at)
                    .await
                    .map_err(|e| {
                        tracing::warn!(%user, error = %e, "invalidate_user_tokens failed");
                        ProtocolError::from(codes::ERROR_INTERNAL)
                    })?;
                Ok("{}".into())
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct InvalidateRequest {
    #[serde(default)]
    user: String,
    issued_before: Option<i64>,
    expire_at: Option<i64>,
    #[serde(default)]
    channel: String,
}

fn parse<T: DeserializeOwned>(params: &str) -> Result<T, CommandError> {
    serde_json::from_str(params).map_err(|e| CommandError::BadRequest(e.to_string()))
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("invariant: API results serialize")
}

fn required(field: &str, value: &str) -> Result<(), CommandError> {
    if value.is_empty() {
        return Err(CommandError::BadRequest(format!("{field} is required")));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct PublishRequest {
    #[serde(default)]
    channel: String,
    data: Option<Data>,
    #[serde(default)]
    skip_history: bool,
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    b64data: String,
    /// Delta subscribers get it as a delta against the previous publication, even where the
    /// namespace has no `delta_publish` (Centrifugo's `delta`).
    #[serde(default)]
    delta: bool,
}

fn check_data(data: Option<Data>, b64data: &str) -> Result<Data, CommandError> {
    if !b64data.is_empty() {
        // JSON-protocol clients cannot receive binary; Centrifugo disconnects them for it.
        return Err(ProtocolError::from(codes::ERROR_NOT_AVAILABLE).into());
    }
    data.ok_or_else(|| CommandError::BadRequest("data is required".into()))
}

async fn publish(node: &Node, req: PublishRequest) -> Result<String, CommandError> {
    let data = check_data(req.data, &req.b64data)?;
    let pos = node
        .publish(
            Source::Api,
            &req.channel,
            data,
            None,
            req.tags,
            Some(req.idempotency_key),
            req.skip_history,
            req.delta,
        )
        .await?;
    Ok(to_json(&pos))
}

#[derive(Debug, Deserialize)]
pub struct BroadcastRequest {
    #[serde(default)]
    channels: Vec<String>,
    data: Option<Data>,
    #[serde(default)]
    skip_history: bool,
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    b64data: String,
    #[serde(default)]
    delta: bool,
}

async fn broadcast(node: &Node, req: BroadcastRequest) -> Result<String, CommandError> {
    let data = check_data(req.data, &req.b64data)?;
    // All at once: the Redis engine pipelines them on its connections, one round trip for
    // the batch rather than one per channel.
    let publishes = req.channels.iter().map(|channel| {
        let data = serde_json::value::RawValue::from_string(data.get().to_owned())
            .expect("invariant: already valid json");
        let key = Some(req.idempotency_key.clone());
        node.publish(
            Source::Api,
            channel,
            data,
            None,
            req.tags.clone(),
            key,
            req.skip_history,
            req.delta,
        )
    });
    let responses: Vec<String> = futures_util::future::join_all(publishes)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(pos) => format!("{{\"result\":{}}}", to_json(&pos)),
            Err(e) => format!("{{\"error\":{}}}", to_json(&e)),
        })
        .collect();
    Ok(format!("{{\"responses\":[{}]}}", responses.join(",")))
}

/// Whose connections a user action is for, as the API names them.
#[derive(Deserialize)]
struct UserTarget {
    #[serde(default)]
    user: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    channel: String,
}

impl UserTarget {
    fn target(&self) -> Target {
        Target {
            user: self.user.clone(),
            client: self.client.clone(),
        }
    }
}

#[derive(Deserialize)]
struct DisconnectRequest {
    #[serde(flatten)]
    target: UserTarget,
    #[serde(default)]
    whitelist: Vec<String>,
    disconnect: Option<CustomDisconnect>,
}

#[derive(Deserialize)]
struct CustomDisconnect {
    code: u16,
}

#[derive(Deserialize)]
struct RefreshRequest {
    #[serde(flatten)]
    target: UserTarget,
    #[serde(default)]
    expired: bool,
    expire_at: Option<i64>,
}

#[derive(Deserialize)]
struct ChannelParam {
    #[serde(default)]
    channel: String,
}

async fn presence(node: &Node, channel: &str, stats: bool) -> Result<String, CommandError> {
    if !node.channel_options(channel)?.presence {
        return Err(ProtocolError::from(codes::ERROR_NOT_AVAILABLE).into());
    }
    let internal = |e: crate::presence::PresenceError| {
        tracing::warn!(error = %e, "presence read failed");
        CommandError::Protocol(codes::ERROR_INTERNAL.into())
    };
    if stats {
        let (num_clients, num_users) = node.presence.stats(channel).await.map_err(internal)?;
        Ok(to_json(&PresenceStatsResult {
            num_clients,
            num_users,
        }))
    } else {
        let presence = node.presence.presence(channel).await.map_err(internal)?;
        Ok(to_json(&PresenceResult { presence }))
    }
}

#[derive(Debug, Deserialize)]
pub struct HistoryRequest {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    limit: i64,
    since: Option<StreamPosition>,
    #[serde(default)]
    reverse: bool,
}

async fn history(node: &Node, req: HistoryRequest) -> Result<String, CommandError> {
    let limit = match req.limit {
        0 => Some(0),
        n if n < 0 => None,
        n => Some(n as usize),
    };
    let page = node
        .history(
            &req.channel,
            &HistoryFilter {
                since: req.since,
                limit,
                reverse: req.reverse,
            },
        )
        .await?;
    Ok(to_json(&HistoryResult {
        publications: page.publications,
        epoch: page.position.epoch,
        offset: page.position.offset,
    }))
}

async fn history_remove(node: &Node, channel: &str) -> Result<String, CommandError> {
    node.channel_options(channel)?;
    node.broker
        .remove_history(channel)
        .await
        .map_err(broker_error)?;
    Ok("{}".into())
}

#[derive(Deserialize)]
struct ChannelsRequest {
    #[serde(default)]
    pattern: String,
}

async fn channels(node: &Node, pattern: &str) -> String {
    #[derive(Serialize)]
    struct Info {
        num_clients: usize,
    }
    let channels: BTreeMap<String, Info> = node
        .channels(pattern)
        .await
        .into_iter()
        .map(|(name, n)| (name, Info { num_clients: n }))
        .collect();
    #[derive(Serialize)]
    struct Out {
        channels: BTreeMap<String, Info>,
    }
    to_json(&Out { channels })
}

/// This node and every other node heard from recently.
fn info(node: &Node) -> String {
    let mut nodes = vec![node.info()];
    nodes.extend(node.cluster.others());
    serde_json::json!({ "nodes": nodes }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(method: &str, params: &str) -> String {
        match Command::parse(method, params) {
            Err(CommandError::BadRequest(m)) => m,
            other => panic!("{method} {params}: {other:?}"),
        }
    }

    #[test]
    fn user_actions_parse_into_their_typed_form() {
        let parsed = Command::parse("refresh", r#"{"user":"7","client":"c1","expire_at":0}"#);
        match parsed.expect("parses") {
            Command::User(action) => assert_eq!(
                action,
                UserAction::Refresh {
                    target: Target {
                        user: "7".into(),
                        client: "c1".into()
                    },
                    expire_at: None,
                    expired: false
                }
            ),
            other => panic!("{other:?}"),
        }
        match Command::parse("disconnect", r#"{"user":"7"}"#).expect("parses") {
            Command::User(UserAction::Disconnect { code, .. }) => {
                assert_eq!(code, codes::DISCONNECT_FORCE_NO_RECONNECT.code)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_field_or_a_bad_code_is_a_bad_request_and_a_stranger_method_unknown() {
        assert_eq!(bad("subscribe", r#"{"user":"7"}"#), "channel is required");
        assert_eq!(
            bad("unsubscribe", r#"{"channel":"chat:1"}"#),
            "user is required"
        );
        assert_eq!(
            bad("disconnect", r#"{"user":"7","disconnect":{"code":2999}}"#),
            "disconnect.code must be in 3000..4999"
        );
        assert_eq!(bad("broadcast", r#"{"data":{}}"#), "channels are required");
        bad("publish", "{not json");
        assert!(matches!(
            Command::parse("nope", "{}"),
            Err(CommandError::UnknownMethod(m)) if m == "nope"
        ));
    }
}
