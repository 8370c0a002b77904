//! What other parts of the node ask a connection to do: an item of its outbound queue that
//! the connection task carries out in order with the frames around it.

/// Actions other parts of the node ask a connection to take.
#[derive(Debug)]
pub enum Control {
    /// Server API subscribe: a server-side subscription.
    Subscribe { channel: String },
    /// Server API unsubscribe.
    Unsubscribe { channel: String },
    /// Server API refresh: a new expiry (unix seconds), or expire now.
    Refresh {
        expire_at: Option<i64>,
        expired: bool,
    },
}
