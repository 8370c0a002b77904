//! Server API methods. Each parses its params and returns its result as JSON text.

use std::collections::BTreeMap;

use chorus_protocol::codes::{self, Disconnect, ProtocolError};
use chorus_protocol::frame::{
    Data, HistoryResult, PresenceResult, PresenceStatsResult, StreamPosition,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::broker::HistoryFilter;
use crate::client::Control;
use crate::node::{broker_error, Node};

fn parse<T: DeserializeOwned>(params: &str) -> Result<T, ApiError> {
    serde_json::from_str(params).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("invariant: API results serialize")
}

fn required(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::BadRequest(format!("{field} is required")));
    }
    Ok(())
}

pub async fn dispatch(node: &Node, method: &str, params: &str) -> Result<String, ApiError> {
    match method {
        "publish" => publish(node, parse(params)?).await,
        "broadcast" => broadcast(node, parse(params)?).await,
        "subscribe" | "unsubscribe" | "disconnect" | "refresh" => {
            let out = apply_local(node, method, params)?;
            // The user may be connected to any node: every other node does the same.
            let command = crate::cluster::Command::Api {
                method: method.to_owned(),
                params: params.to_owned(),
            };
            crate::cluster::send(node, command, None).await;
            Ok(out)
        }
        "presence" => presence(node, parse(params)?, false).await,
        "presence_stats" => presence(node, parse(params)?, true).await,
        "history" => history(node, parse(params)?).await,
        "history_remove" => history_remove(node, parse(params)?).await,
        "channels" => channels(node, parse(params)?).await,
        "info" => Ok(info(node)),
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}

/// The part of a user-targeted method that acts on this node's connections; another node
/// runs it when told through the cluster's control channel.
pub fn apply_local(node: &Node, method: &str, params: &str) -> Result<String, ApiError> {
    match method {
        "subscribe" => subscribe(node, parse(params)?),
        "unsubscribe" => unsubscribe(node, parse(params)?),
        "disconnect" => disconnect(node, parse(params)?),
        "refresh" => refresh(node, parse(params)?),
        other => Err(ApiError::UnknownMethod(other.to_owned())),
    }
}

#[derive(Deserialize)]
struct PublishRequest {
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
}

fn check_data(data: Option<Data>, b64data: &str) -> Result<Data, ApiError> {
    if !b64data.is_empty() {
        // JSON-protocol clients cannot receive binary; Centrifugo disconnects them for it.
        return Err(ProtocolError::from(codes::ERROR_NOT_AVAILABLE).into());
    }
    data.ok_or_else(|| ApiError::BadRequest("data is required".into()))
}

async fn publish(node: &Node, req: PublishRequest) -> Result<String, ApiError> {
    required("channel", &req.channel)?;
    let data = check_data(req.data, &req.b64data)?;
    let pos = node
        .publish(
            &req.channel,
            data,
            None,
            req.tags,
            Some(req.idempotency_key),
            req.skip_history,
        )
        .await?;
    Ok(to_json(&pos))
}

#[derive(Deserialize)]
struct BroadcastRequest {
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
}

async fn broadcast(node: &Node, req: BroadcastRequest) -> Result<String, ApiError> {
    if req.channels.is_empty() {
        return Err(ApiError::BadRequest("channels are required".into()));
    }
    let data = check_data(req.data, &req.b64data)?;
    // All at once: the Redis engine pipelines them on its connections, one round trip for
    // the batch rather than one per channel.
    let publishes = req.channels.iter().map(|channel| {
        let data = serde_json::value::RawValue::from_string(data.get().to_owned())
            .expect("invariant: already valid json");
        let key = Some(req.idempotency_key.clone());
        node.publish(channel, data, None, req.tags.clone(), key, req.skip_history)
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

/// Picks a user's connections on this node, optionally one client or session.
#[derive(Deserialize)]
struct UserTarget {
    #[serde(default)]
    user: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    channel: String,
}

fn targets(node: &Node, t: &UserTarget) -> Vec<std::sync::Arc<crate::client::ClientHandle>> {
    node.hub
        .user_clients(&t.user)
        .into_iter()
        .filter(|c| t.client.is_empty() || *c.id == *t.client)
        .collect()
}

fn subscribe(node: &Node, t: UserTarget) -> Result<String, ApiError> {
    required("user", &t.user)?;
    required("channel", &t.channel)?;
    node.channel_options(&t.channel)?;
    for c in targets(node, &t) {
        c.control(Control::Subscribe {
            channel: t.channel.clone(),
        });
    }
    Ok("{}".into())
}

fn unsubscribe(node: &Node, t: UserTarget) -> Result<String, ApiError> {
    required("user", &t.user)?;
    required("channel", &t.channel)?;
    for c in targets(node, &t) {
        c.control(Control::Unsubscribe {
            channel: t.channel.clone(),
        });
    }
    Ok("{}".into())
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

fn disconnect(node: &Node, req: DisconnectRequest) -> Result<String, ApiError> {
    required("user", &req.target.user)?;
    let d = match req.disconnect {
        // A custom code keeps its reconnect semantics; its reason is the standard one for
        // that range, since close reasons are static here.
        Some(c) if (3000..5000).contains(&c.code) => {
            let base = if (Disconnect {
                code: c.code,
                reason: "",
            })
            .reconnect()
            {
                codes::DISCONNECT_FORCE_RECONNECT
            } else {
                codes::DISCONNECT_FORCE_NO_RECONNECT
            };
            Disconnect {
                code: c.code,
                reason: base.reason,
            }
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "disconnect.code must be in 3000..4999".into(),
            ))
        }
        None => codes::DISCONNECT_FORCE_NO_RECONNECT,
    };
    for c in targets(node, &req.target)
        .into_iter()
        .filter(|c| !req.whitelist.iter().any(|w| *w == *c.id))
    {
        c.disconnect(d);
    }
    Ok("{}".into())
}

#[derive(Deserialize)]
struct RefreshRequest {
    #[serde(flatten)]
    target: UserTarget,
    #[serde(default)]
    expired: bool,
    expire_at: Option<i64>,
}

fn refresh(node: &Node, req: RefreshRequest) -> Result<String, ApiError> {
    required("user", &req.target.user)?;
    for c in targets(node, &req.target) {
        c.control(Control::Refresh {
            expire_at: req.expire_at.filter(|t| *t > 0),
            expired: req.expired,
        });
    }
    Ok("{}".into())
}

#[derive(Deserialize)]
struct ChannelParam {
    #[serde(default)]
    channel: String,
}

async fn presence(node: &Node, req: ChannelParam, stats: bool) -> Result<String, ApiError> {
    required("channel", &req.channel)?;
    if !node.channel_options(&req.channel)?.presence {
        return Err(ProtocolError::from(codes::ERROR_NOT_AVAILABLE).into());
    }
    let internal = |e: crate::presence::PresenceError| {
        tracing::warn!(error = %e, "presence read failed");
        ApiError::Protocol(codes::ERROR_INTERNAL.into())
    };
    if stats {
        let (num_clients, num_users) = node.presence.stats(&req.channel).await.map_err(internal)?;
        Ok(to_json(&PresenceStatsResult {
            num_clients,
            num_users,
        }))
    } else {
        let presence = node
            .presence
            .presence(&req.channel)
            .await
            .map_err(internal)?;
        Ok(to_json(&PresenceResult { presence }))
    }
}

#[derive(Deserialize)]
struct HistoryRequest {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    limit: i64,
    since: Option<StreamPosition>,
    #[serde(default)]
    reverse: bool,
}

async fn history(node: &Node, req: HistoryRequest) -> Result<String, ApiError> {
    required("channel", &req.channel)?;
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

async fn history_remove(node: &Node, req: ChannelParam) -> Result<String, ApiError> {
    required("channel", &req.channel)?;
    node.channel_options(&req.channel)?;
    node.broker
        .remove_history(&req.channel)
        .await
        .map_err(broker_error)?;
    Ok("{}".into())
}

#[derive(Deserialize)]
struct ChannelsRequest {
    #[serde(default)]
    pattern: String,
}

async fn channels(node: &Node, req: ChannelsRequest) -> Result<String, ApiError> {
    #[derive(Serialize)]
    struct Info {
        num_clients: usize,
    }
    let channels: BTreeMap<String, Info> = crate::cluster::channels(node, &req.pattern)
        .await
        .into_iter()
        .map(|(name, n)| (name, Info { num_clients: n }))
        .collect();
    #[derive(Serialize)]
    struct Out {
        channels: BTreeMap<String, Info>,
    }
    Ok(to_json(&Out { channels }))
}

/// This node and every other node heard from recently.
fn info(node: &Node) -> String {
    let mut nodes = vec![node.info()];
    nodes.extend(node.cluster.others());
    serde_json::json!({ "nodes": nodes }).to_string()
}

/// Glob with `*` (any run) and `?` (one character), as the `channels` pattern uses.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_patterns() {
        assert!(glob_match("chat:*", "chat:room"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("chat:*", "news"));
        assert!(glob_match("*:room*", "chat:room-1"));
    }
}
