//! Coordinator ⇄ worker messages, one JSON object per line.
//!
//! The coordinator writes a [`WorkerPlan`] then [`Command`]s to the worker's stdin; the worker
//! writes [`Report`]s to its stdout. Anything a worker logs goes to stderr.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cli::Protocol;

/// Everything a worker needs to open its share of the connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerPlan {
    pub protocol: Protocol,
    pub urls: Vec<String>,
    /// Global index of this worker's first connection; decides its URL, source address and user.
    pub first_conn: usize,
    /// Every channel name; connections refer to them by index.
    pub channels: Vec<String>,
    /// The channel index of each of this worker's connections.
    pub assignment: Vec<u32>,
    /// This worker's share of the connect rate, per second.
    pub connect_rate: f64,
    pub connect_timeout_ms: u64,
    pub hmac_secret: Option<String>,
    pub pusher_key: Option<String>,
    pub source_ips: u8,
    /// Subscribe with fossil delta compression.
    #[serde(default)]
    pub delta: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Publishing is over: `published[c]` publications went to channel `c`. Wait until they
    /// have all arrived (or nothing arrived for `timeout_ms`), then send the result.
    Drain {
        published: Vec<u64>,
        timeout_ms: u64,
    },
    /// Close every connection (a normal close) and exit.
    Close,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    Progress(Progress),
    /// Every connection has either subscribed or failed.
    Ready(Progress),
    Result(Box<WorkerResult>),
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Progress {
    pub connected: u64,
    pub connect_errors: u64,
    pub delivered: u64,
    pub disconnects: u64,
}

/// What a worker measured; histograms travel as base64 of hdrhistogram's V2 format.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WorkerResult {
    pub connected: u64,
    pub connect_errors: BTreeMap<String, u64>,
    pub connect_latency_us: String,
    pub latency_us: String,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Unparsable or refused server messages after subscribing.
    pub protocol_errors: u64,
    /// Bytes of the messages received after subscribing.
    #[serde(default)]
    pub bytes_received: u64,
    /// Close codes of connections that ended before the run closed them ("reset" if none).
    pub unexpected_disconnects: BTreeMap<String, u64>,
    pub first_delivery_us: u64,
    pub last_delivery_us: u64,
    pub series: Vec<SecondSample>,
}

/// Deliveries in one wall-clock second.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecondSample {
    /// Unix seconds.
    pub second: u64,
    pub delivered: u64,
    pub latency_us: String,
}
