//! Error codes (in replies) and disconnect codes (WebSocket close codes).
//!
//! The numbers and messages are Centrifugo's, so the official SDKs react to them as they would
//! to Centrifugo: codes 3000..3499 make a client reconnect, 3500..3999 are terminal.

use serde::Serialize;

/// An error returned in a reply to one command; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtocolError {
    pub code: u32,
    pub message: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

impl ProtocolError {
    const fn new_static(code: u32, message: &'static str, temporary: bool) -> StaticError {
        StaticError {
            code,
            message,
            temporary,
        }
    }
}

/// A compile-time error constant, turned into a [`ProtocolError`] where it is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticError {
    pub code: u32,
    pub message: &'static str,
    pub temporary: bool,
}

impl From<StaticError> for ProtocolError {
    fn from(e: StaticError) -> Self {
        ProtocolError {
            code: e.code,
            message: e.message.to_owned(),
            temporary: e.temporary,
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProtocolError {}

pub const ERROR_INTERNAL: StaticError =
    ProtocolError::new_static(100, "internal server error", true);
pub const ERROR_UNAUTHORIZED: StaticError = ProtocolError::new_static(101, "unauthorized", false);
pub const ERROR_UNKNOWN_CHANNEL: StaticError =
    ProtocolError::new_static(102, "unknown channel", false);
pub const ERROR_PERMISSION_DENIED: StaticError =
    ProtocolError::new_static(103, "permission denied", false);
pub const ERROR_METHOD_NOT_FOUND: StaticError =
    ProtocolError::new_static(104, "method not found", false);
pub const ERROR_ALREADY_SUBSCRIBED: StaticError =
    ProtocolError::new_static(105, "already subscribed", false);
pub const ERROR_LIMIT_EXCEEDED: StaticError =
    ProtocolError::new_static(106, "limit exceeded", false);
pub const ERROR_BAD_REQUEST: StaticError = ProtocolError::new_static(107, "bad request", false);
pub const ERROR_NOT_AVAILABLE: StaticError = ProtocolError::new_static(108, "not available", false);
pub const ERROR_TOKEN_EXPIRED: StaticError = ProtocolError::new_static(109, "token expired", false);
pub const ERROR_EXPIRED: StaticError = ProtocolError::new_static(110, "expired", false);
pub const ERROR_TOO_MANY_REQUESTS: StaticError =
    ProtocolError::new_static(111, "too many requests", true);
pub const ERROR_UNRECOVERABLE_POSITION: StaticError =
    ProtocolError::new_static(112, "unrecoverable position", false);

/// Why the server closes a connection: sent as the WebSocket close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Disconnect {
    pub code: u16,
    pub reason: &'static str,
}

impl Disconnect {
    /// Whether an SDK reconnects after this code (Centrifugo's ranges).
    pub fn reconnect(&self) -> bool {
        matches!(self.code, 3000..=3499 | 4000..=4499) || self.code < 3000
    }
}

pub const DISCONNECT_CONNECTION_CLOSED: Disconnect = Disconnect {
    code: 3000,
    reason: "connection closed",
};
pub const DISCONNECT_SHUTDOWN: Disconnect = Disconnect {
    code: 3001,
    reason: "shutdown",
};
pub const DISCONNECT_SERVER_ERROR: Disconnect = Disconnect {
    code: 3004,
    reason: "internal server error",
};
pub const DISCONNECT_EXPIRED: Disconnect = Disconnect {
    code: 3005,
    reason: "connection expired",
};
pub const DISCONNECT_SUB_EXPIRED: Disconnect = Disconnect {
    code: 3006,
    reason: "subscription expired",
};
pub const DISCONNECT_SLOW: Disconnect = Disconnect {
    code: 3008,
    reason: "slow",
};
pub const DISCONNECT_WRITE_ERROR: Disconnect = Disconnect {
    code: 3009,
    reason: "write error",
};
pub const DISCONNECT_INSUFFICIENT_STATE: Disconnect = Disconnect {
    code: 3010,
    reason: "insufficient state",
};
pub const DISCONNECT_FORCE_RECONNECT: Disconnect = Disconnect {
    code: 3011,
    reason: "force reconnect",
};
pub const DISCONNECT_NO_PONG: Disconnect = Disconnect {
    code: 3012,
    reason: "no pong",
};
pub const DISCONNECT_TOO_MANY_REQUESTS: Disconnect = Disconnect {
    code: 3013,
    reason: "too many requests",
};
pub const DISCONNECT_INVALID_TOKEN: Disconnect = Disconnect {
    code: 3500,
    reason: "invalid token",
};
pub const DISCONNECT_BAD_REQUEST: Disconnect = Disconnect {
    code: 3501,
    reason: "bad request",
};
pub const DISCONNECT_STALE: Disconnect = Disconnect {
    code: 3502,
    reason: "stale",
};
pub const DISCONNECT_FORCE_NO_RECONNECT: Disconnect = Disconnect {
    code: 3503,
    reason: "force disconnect",
};
pub const DISCONNECT_CONNECTION_LIMIT: Disconnect = Disconnect {
    code: 3504,
    reason: "connection limit",
};
pub const DISCONNECT_CHANNEL_LIMIT: Disconnect = Disconnect {
    code: 3505,
    reason: "channel limit",
};
pub const DISCONNECT_PERMISSION_DENIED: Disconnect = Disconnect {
    code: 3507,
    reason: "permission denied",
};
pub const DISCONNECT_NOT_AVAILABLE: Disconnect = Disconnect {
    code: 3508,
    reason: "not available",
};
/// RFC 6455 "message too big": the SDKs map it to their message-size-limit state and stop.
pub const DISCONNECT_MESSAGE_TOO_BIG: Disconnect = Disconnect {
    code: 1009,
    reason: "message size limit exceeded",
};

/// Unsubscribe push codes: below 2500 the SDK stays unsubscribed, from 2500 it resubscribes.
pub const UNSUBSCRIBE_SERVER: (u32, &str) = (2000, "server unsubscribe");
pub const UNSUBSCRIBE_EXPIRED: (u32, &str) = (2501, "subscription expired");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_ranges_follow_centrifugo() {
        assert!(DISCONNECT_SHUTDOWN.reconnect());
        assert!(DISCONNECT_SLOW.reconnect());
        assert!(!DISCONNECT_INVALID_TOKEN.reconnect());
        assert!(!DISCONNECT_CONNECTION_LIMIT.reconnect());
    }

    #[test]
    fn temporary_flag_is_omitted_when_false() {
        let e: ProtocolError = ERROR_PERMISSION_DENIED.into();
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":103,"message":"permission denied"}"#
        );
        let e: ProtocolError = ERROR_INTERNAL.into();
        assert!(serde_json::to_string(&e)
            .unwrap()
            .contains(r#""temporary":true"#));
    }
}
