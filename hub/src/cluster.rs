//! The other nodes, as one node sees them through the engine's control channel.
//!
//! With the Redis engine every node publishes its [`NodeInfo`] every [`HEARTBEAT`] (the
//! server API's `info` lists every node heard from recently), re-runs server-API actions on
//! users' connections that another node received (`disconnect`, `unsubscribe`, ...), and
//! answers surveys (`channels` asks every node for its channels and merges the answers). With
//! the memory engine there are no other nodes and nothing is sent.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::node::Node;

/// How often a node announces itself.
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// A node not heard from for this long is gone (Centrifugo uses three heartbeats too).
const NODE_TTL: Duration = Duration::from_secs(3 * 3 + 1);
/// How long `channels` waits for the other nodes' answers.
const SURVEY_TIMEOUT: Duration = Duration::from_secs(2);

/// One node's numbers, as the server API's `info` reports them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub uid: String,
    pub name: String,
    pub version: String,
    pub num_clients: usize,
    pub num_users: usize,
    pub num_subs: usize,
    pub num_channels: usize,
    pub uptime: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    Node(NodeInfo),
    /// A server API method on users' connections, to apply to this node's connections.
    Api {
        method: String,
        params: String,
    },
    /// Asks for this node's channels matching `pattern`; answered to the asker only.
    Survey {
        id: u64,
        pattern: String,
    },
    SurveyReply {
        id: u64,
        channels: BTreeMap<String, usize>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    from: String,
    #[serde(flatten)]
    command: Command,
}

type Channels = BTreeMap<String, usize>;

#[derive(Default)]
pub struct Cluster {
    nodes: Mutex<HashMap<String, (NodeInfo, Instant)>>,
    surveys: Mutex<HashMap<u64, mpsc::UnboundedSender<Channels>>>,
    next_survey: AtomicU64,
}

impl Cluster {
    /// Every other node heard from within [`NODE_TTL`].
    pub fn others(&self) -> Vec<NodeInfo> {
        let mut nodes = self.nodes.lock();
        nodes.retain(|_, (_, seen)| seen.elapsed() < NODE_TTL);
        nodes.values().map(|(info, _)| info.clone()).collect()
    }
}

fn encode(node: &Node, command: Command) -> String {
    serde_json::to_string(&Envelope {
        from: node.uid.clone(),
        command,
    })
    .expect("invariant: control messages serialize")
}

/// Sends a control command to every other node (or to `to`); failures are logged, since
/// the local part of an action has already happened.
pub async fn send(node: &Node, command: Command, to: Option<&str>) {
    if !node.config.engine.is_redis() {
        return;
    }
    if let Err(e) = node
        .broker
        .publish_control(&encode(node, command), to)
        .await
    {
        tracing::warn!(error = %e, "control message not sent");
    }
}

/// Handles a control message from another node.
pub fn handle(node: &Arc<Node>, data: &str) {
    let envelope: Envelope = match serde_json::from_str(data) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable control message");
            return;
        }
    };
    if envelope.from == node.uid {
        return;
    }
    match envelope.command {
        Command::Node(info) => {
            node.cluster
                .nodes
                .lock()
                .insert(info.uid.clone(), (info, Instant::now()));
        }
        Command::Api { method, params } => {
            let node = node.clone();
            tokio::spawn(async move {
                if let Err(e) = crate::api::methods::apply_local(&node, &method, &params) {
                    tracing::warn!(%method, error = %e, "control api action failed");
                }
            });
        }
        Command::Survey { id, pattern } => {
            let node = node.clone();
            tokio::spawn(async move {
                let channels = local_channels(&node, &pattern);
                let reply = Command::SurveyReply { id, channels };
                send(&node, reply, Some(&envelope.from)).await;
            });
        }
        Command::SurveyReply { id, channels } => {
            if let Some(tx) = node.cluster.surveys.lock().get(&id) {
                let _ = tx.send(channels);
            }
        }
    }
}

/// This node's channels matching a `channels` pattern, with their subscriber counts.
pub fn local_channels(node: &Node, pattern: &str) -> Channels {
    node.hub
        .channels()
        .into_iter()
        .filter(|(name, _)| pattern.is_empty() || crate::api::methods::glob_match(pattern, name))
        .map(|(name, n)| (name.to_string(), n))
        .collect()
}

/// Every node's channels matching `pattern`, subscriber counts summed. Nodes that do not
/// answer within [`SURVEY_TIMEOUT`] are left out, as in Centrifugo.
pub async fn channels(node: &Node, pattern: &str) -> Channels {
    let mut merged = local_channels(node, pattern);
    let expected = node.cluster.others().len();
    if expected == 0 {
        return merged;
    }
    let id = node.cluster.next_survey.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.cluster.surveys.lock().insert(id, tx);
    let survey = Command::Survey {
        id,
        pattern: pattern.to_owned(),
    };
    send(node, survey, None).await;
    let deadline = tokio::time::Instant::now() + SURVEY_TIMEOUT;
    for _ in 0..expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(channels)) => {
                for (name, n) in channels {
                    *merged.entry(name).or_default() += n;
                }
            }
            _ => break,
        }
    }
    node.cluster.surveys.lock().remove(&id);
    merged
}

/// Announces this node every [`HEARTBEAT`] until shutdown.
pub fn spawn_heartbeat(node: Arc<Node>) {
    if !node.config.engine.is_redis() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = tick.tick() => send(&node, Command::Node(node.info()), None).await,
                _ = node.shutdown.cancelled() => return,
            }
        }
    });
}
