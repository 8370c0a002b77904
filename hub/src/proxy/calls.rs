//! What each proxy sends and what its `result` may hold, in Centrifugo v6's shapes.
//!
//! Every request starts with [`Common`]: the client id, its transport, protocol and encoding,
//! and (except for connect) its user.

use chorus_protocol::Protocol;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The fields every proxy request carries.
#[derive(Debug, Serialize)]
pub struct Common<'a> {
    pub client: &'a str,
    pub transport: &'a str,
    pub protocol: &'static str,
    pub encoding: &'static str,
}

pub fn common<'a>(client: &'a str, transport: &'a str, protocol: Protocol) -> Common<'a> {
    Common {
        client,
        transport,
        protocol: match protocol {
            Protocol::Json => "json",
            Protocol::Protobuf => "protobuf",
        },
        // Payloads reach the backend as JSON either way (Chorus carries JSON).
        encoding: "json",
    }
}

#[derive(Debug, Serialize)]
pub struct ConnectRequest<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a RawValue>,
}

/// A connection the backend vouches for.
#[derive(Debug, Default, Deserialize)]
pub struct ConnectResult {
    #[serde(default)]
    pub user: String,
    /// Unix seconds; 0 or absent: never expires.
    #[serde(default)]
    pub expire_at: i64,
    pub info: Option<Box<RawValue>>,
    /// Returned to the client in the connect result.
    pub data: Option<Box<RawValue>>,
    /// Server-side subscriptions.
    #[serde(default)]
    pub channels: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RefreshRequest<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    pub user: &'a str,
}

/// The answer of the refresh and sub_refresh proxies.
#[derive(Debug, Default, Deserialize)]
pub struct RefreshResult {
    /// End the connection (or subscription) now.
    #[serde(default)]
    pub expired: bool,
    /// The new expiry, unix seconds; 0 or absent: never again.
    #[serde(default)]
    pub expire_at: i64,
}

#[derive(Debug, Serialize)]
pub struct SubRefreshRequest<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    pub user: &'a str,
    pub channel: &'a str,
}

#[derive(Debug, Serialize)]
pub struct PublishRequest<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    pub user: &'a str,
    pub channel: &'a str,
    pub data: &'a RawValue,
}

/// A publication the backend lets through, maybe changed.
#[derive(Debug, Default, Deserialize)]
pub struct PublishResult {
    /// Publish this instead of what the client sent.
    pub data: Option<Box<RawValue>>,
    #[serde(default)]
    pub skip_history: bool,
}

#[derive(Debug, Serialize)]
pub struct RpcRequest<'a> {
    #[serde(flatten)]
    pub common: Common<'a>,
    pub user: &'a str,
    pub method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RpcResult {
    pub data: Option<Box<RawValue>>,
}
