//! What the server API can do to a user's connections, wherever they are: subscribe them to
//! a channel, unsubscribe them, disconnect them, or refresh their expiry. A typed action,
//! applied by each node to its own connections: the node that received the command applies
//! it ([`crate::node::Node::act`]) and sends the same value to every other node through the
//! cluster, which applies it on arrival. Serialized as the cluster carries it.

use chorus_protocol::codes::{self, Disconnect};
use serde::{Deserialize, Serialize};

use crate::client::Control;
use crate::hub::Hub;

/// Whose connections: every connection of `user`, or only client `client` when set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum UserAction {
    /// A server-side subscription to `channel`.
    Subscribe {
        target: Target,
        channel: String,
    },
    Unsubscribe {
        target: Target,
        channel: String,
    },
    /// Close the connections with `code`, except the clients in `whitelist`.
    Disconnect {
        target: Target,
        code: u16,
        whitelist: Vec<String>,
    },
    /// A new expiry (unix seconds), or expire now.
    Refresh {
        target: Target,
        expire_at: Option<i64>,
        expired: bool,
    },
}

impl UserAction {
    fn target(&self) -> &Target {
        match self {
            UserAction::Subscribe { target, .. }
            | UserAction::Unsubscribe { target, .. }
            | UserAction::Disconnect { target, .. }
            | UserAction::Refresh { target, .. } => target,
        }
    }

    /// Applies the action to this node's connections of its target; returns how many.
    pub fn apply(&self, hub: &Hub) -> usize {
        let target = self.target();
        let clients = hub
            .user_clients(&target.user)
            .into_iter()
            .filter(|c| target.client.is_empty() || *c.id == *target.client);
        let mut n = 0;
        for c in clients {
            match self {
                UserAction::Subscribe { channel, .. } => {
                    c.control(Control::Subscribe {
                        channel: channel.clone(),
                    });
                }
                UserAction::Unsubscribe { channel, .. } => {
                    c.control(Control::Unsubscribe {
                        channel: channel.clone(),
                    });
                }
                UserAction::Disconnect {
                    code, whitelist, ..
                } => {
                    if whitelist.iter().any(|w| *w == *c.id) {
                        continue;
                    }
                    c.disconnect(disconnect(*code));
                }
                UserAction::Refresh {
                    expire_at, expired, ..
                } => {
                    c.control(Control::Refresh {
                        expire_at: *expire_at,
                        expired: *expired,
                    });
                }
            }
            n += 1;
        }
        n
    }
}

/// The close a disconnect code makes. Close reasons are static here, so a custom code
/// (3000..4999) gets the standard reason of its range, and keeps that range's reconnect
/// advice.
pub fn disconnect(code: u16) -> Disconnect {
    let base = if (Disconnect { code, reason: "" }).reconnect() {
        codes::DISCONNECT_FORCE_RECONNECT
    } else {
        codes::DISCONNECT_FORCE_NO_RECONNECT
    };
    Disconnect {
        code,
        reason: base.reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_crosses_the_cluster_unchanged() {
        let target = |client: &str| Target {
            user: "42".into(),
            client: client.into(),
        };
        let a = UserAction::Disconnect {
            target: target(""),
            code: 4500,
            whitelist: vec!["c1".into()],
        };
        let wire = serde_json::to_string(&a).expect("serializes");
        assert_eq!(
            wire,
            r#"{"action":"disconnect","target":{"user":"42"},"code":4500,"whitelist":["c1"]}"#
        );
        let every = [
            a,
            UserAction::Subscribe {
                target: target("c9"),
                channel: "chat:1".into(),
            },
            UserAction::Unsubscribe {
                target: target(""),
                channel: "chat:1".into(),
            },
            UserAction::Refresh {
                target: target("c9"),
                expire_at: Some(1_900_000_000),
                expired: false,
            },
        ];
        for action in every {
            let wire = serde_json::to_string(&action).expect("serializes");
            assert_eq!(
                serde_json::from_str::<UserAction>(&wire).expect("parses"),
                action,
                "{wire}"
            );
        }
    }

    #[test]
    fn a_custom_code_keeps_its_ranges_reconnect_advice() {
        let default = codes::DISCONNECT_FORCE_NO_RECONNECT;
        assert_eq!(disconnect(default.code), default);
        assert_eq!(
            disconnect(4500).reconnect(),
            Disconnect {
                code: 4500,
                reason: ""
            }
            .reconnect()
        );
        assert_eq!(
            disconnect(3001).reason,
            codes::DISCONNECT_FORCE_RECONNECT.reason
        );
    }
}
