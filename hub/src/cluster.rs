//! The other nodes, over the engine's control channel: transport only. It carries what nodes
//! say to each other and keeps what it hears of them; what an incoming message asks of this
//! node is the node's to do ([`crate::node::Node::on_control`]).
//!
//! With the Redis engine every node publishes its [`NodeInfo`] every [`HEARTBEAT`] (the
//! server API's `info` lists every node heard from recently), sends the user actions it
//! received through the server API ([`UserAction`]: `disconnect`, `unsubscribe`, ...) for
//! every other node to apply to its own connections, and answers surveys (`channels` asks
//! every node for its channels and merges the answers). With the memory engine there are no
//! other nodes and nothing is sent.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::action::UserAction;
use crate::broker::Broker;

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
    /// The Kafka consumer groups this node reads its share of (`consumer/kafka/assign.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kafka_groups: Vec<String>,
}

/// A message between nodes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    Node(NodeInfo),
    /// A user action another node received, to apply to this node's connections.
    Action(UserAction),
    /// Asks for this node's channels matching `pattern`; answered to the asker only.
    Survey {
        id: u64,
        pattern: String,
    },
    SurveyReply {
        id: u64,
        channels: BTreeMap<String, usize>,
    },
    /// An `/emulation` request this node received for a session the addressee holds;
    /// `data` is the client's commands, base64 (Protobuf ones are bytes).
    Emulation {
        session: String,
        data: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    from: String,
    #[serde(flatten)]
    command: Command,
}

/// What another node asks of this one.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    Action(UserAction),
    /// Commands for one of this node's emulated sessions.
    Emulation {
        session: String,
        data: bytes::Bytes,
    },
    /// Answer with [`Cluster::answer_survey`].
    Survey {
        id: u64,
        pattern: String,
        from: String,
    },
}

/// Channel names with their subscriber counts.
pub type Channels = BTreeMap<String, usize>;

pub struct Cluster {
    uid: String,
    broker: Arc<dyn Broker>,
    /// Only the Redis engine has other nodes.
    enabled: bool,
    nodes: Mutex<HashMap<String, (NodeInfo, Instant)>>,
    surveys: Mutex<HashMap<u64, mpsc::UnboundedSender<Channels>>>,
    next_survey: AtomicU64,
}

impl Cluster {
    /// This node (`uid`) among the others reached through `broker`'s control channel.
    pub fn new(uid: String, broker: Arc<dyn Broker>, enabled: bool) -> Self {
        Cluster {
            uid,
            broker,
            enabled,
            nodes: Mutex::new(HashMap::new()),
            surveys: Mutex::new(HashMap::new()),
            next_survey: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `uid` is a live node of the cluster other than this one.
    pub fn knows(&self, uid: &str) -> bool {
        self.others().iter().any(|n| n.uid == uid)
    }

    /// Sends a client's commands to the node holding its emulated session.
    pub async fn emulate(&self, node: &str, session: &str, data: &[u8]) {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        let command = Command::Emulation {
            session: session.to_owned(),
            data,
        };
        self.send(command, Some(node)).await;
    }

    /// Every other node heard from within [`NODE_TTL`].
    pub fn others(&self) -> Vec<NodeInfo> {
        let mut nodes = self.nodes.lock();
        nodes.retain(|_, (_, seen)| seen.elapsed() < NODE_TTL);
        nodes.values().map(|(info, _)| info.clone()).collect()
    }

    /// Sends a command to every other node (or to `to`); failures are logged, since the
    /// local part of an action has already happened.
    pub async fn send(&self, command: Command, to: Option<&str>) {
        if !self.enabled {
            return;
        }
        let data = serde_json::to_string(&Envelope {
            from: self.uid.clone(),
            command,
        })
        .expect("invariant: control messages serialize");
        if let Err(e) = self.broker.publish_control(&data, to).await {
            tracing::warn!(error = %e, "control message not sent");
        }
    }

    /// Reads a control message from another node. Heartbeats and survey answers are kept
    /// here; what the node must act on is returned.
    pub fn receive(&self, data: &str) -> Option<Inbound> {
        let envelope: Envelope = match serde_json::from_str(data) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable control message");
                return None;
            }
        };
        if envelope.from == self.uid {
            return None;
        }
        match envelope.command {
            Command::Node(info) => {
                self.nodes
                    .lock()
                    .insert(info.uid.clone(), (info, Instant::now()));
                None
            }
            Command::Action(action) => Some(Inbound::Action(action)),
            Command::Emulation { session, data } => {
                use base64::Engine as _;
                match base64::engine::general_purpose::STANDARD.decode(data) {
                    Ok(data) => Some(Inbound::Emulation {
                        session,
                        data: data.into(),
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable emulation request from another node");
                        None
                    }
                }
            }
            Command::Survey { id, pattern } => Some(Inbound::Survey {
                id,
                pattern,
                from: envelope.from,
            }),
            Command::SurveyReply { id, channels } => {
                if let Some(tx) = self.surveys.lock().get(&id) {
                    let _ = tx.send(channels);
                }
                None
            }
        }
    }

    pub async fn answer_survey(&self, id: u64, channels: Channels, to: &str) {
        self.send(Command::SurveyReply { id, channels }, Some(to))
            .await;
    }

    /// `local` merged with every other node's channels matching `pattern`, subscriber counts
    /// summed. Nodes that do not answer within [`SURVEY_TIMEOUT`] are left out, as in
    /// Centrifugo.
    pub async fn survey(&self, pattern: &str, local: Channels) -> Channels {
        let mut merged = local;
        let expected = self.others().len();
        if expected == 0 {
            return merged;
        }
        let id = self.next_survey.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.surveys.lock().insert(id, tx);
        let survey = Command::Survey {
            id,
            pattern: pattern.to_owned(),
        };
        self.send(survey, None).await;
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
        self.surveys.lock().remove(&id);
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Target;
    use crate::broker::MemoryBroker;

    #[test]
    fn another_nodes_action_is_handed_to_the_node_and_its_own_echo_is_not() {
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::default());
        let cluster = Cluster::new("me".into(), broker, true);
        let action = UserAction::Unsubscribe {
            target: Target {
                user: "7".into(),
                client: String::new(),
            },
            channel: "chat:1".into(),
        };
        let from = |uid: &str| {
            serde_json::to_string(&Envelope {
                from: uid.into(),
                command: Command::Action(action.clone()),
            })
            .expect("serializes")
        };
        assert_eq!(
            cluster.receive(&from("other")),
            Some(Inbound::Action(action.clone()))
        );
        assert_eq!(cluster.receive(&from("me")), None);
        assert_eq!(cluster.receive("{not json"), None);
    }
}
