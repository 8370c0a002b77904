//! How the state-event consumer ([`super::reactor`]) is doing, for `/health`. Apart from the
//! consumer, so the shared state can hold it without depending on the consumer's code.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Whether the consumer is keeping up: false while an effect keeps failing.
#[derive(Default)]
pub struct ReactorStatus {
    pub healthy: AtomicBool,
    pub last_error: parking_lot::Mutex<Option<String>>,
    /// Whether this consumer holds the state topic's partition while the group lags.
    pub group: Arc<chorus_runtime::kafka::group::GroupHealth>,
}
