//! The subscribe decision for a channel when the client brings no subscription token.
//!
//! Centrifugo decides from namespace options; a deployment with a subscribe proxy asks its
//! backend instead. Both sit behind [`SubscribeAuthorizer`], so the API's proxy is one more
//! implementation, not a change to the client code.

use std::sync::Arc;

use async_trait::async_trait;
use chorus_protocol::codes::{ProtocolError, ERROR_PERMISSION_DENIED};
use serde_json::value::RawValue;

use axum::http::HeaderMap;
use chorus_protocol::Protocol;

use crate::config::ChannelOptions;
use crate::proxy::calls::Common;

/// What the authorizer knows about the request.
#[derive(Debug)]
pub struct SubscribeContext<'a> {
    pub client: &'a str,
    /// `websocket`, `uni_sse`, ...: what a proxy request says the client came over.
    pub transport: &'a str,
    pub protocol: Protocol,
    pub user: &'a str,
    pub channel: &'a str,
    pub data: Option<&'a RawValue>,
    pub options: &'a ChannelOptions,
    /// The client's request headers a proxy passes on (`http_headers`).
    pub headers: Option<&'a HeaderMap>,
}

impl<'a> SubscribeContext<'a> {
    /// The fields every proxy request starts with.
    pub fn common(&self) -> Common<'a> {
        crate::proxy::calls::common(self.client, self.transport, self.protocol)
    }
}

/// A granted subscription.
#[derive(Debug, Default)]
pub struct SubscribeGrant {
    /// Channel info shown in presence and join/leave.
    pub info: Option<Arc<RawValue>>,
    /// Unix seconds when the subscription must be refreshed, if ever.
    pub expire_at: Option<i64>,
}

#[async_trait]
pub trait SubscribeAuthorizer: Send + Sync + 'static {
    async fn authorize(&self, ctx: &SubscribeContext<'_>) -> Result<SubscribeGrant, ProtocolError>;
}

/// Centrifugo's built-in rule: `allow_subscribe_for_client` (and `_for_anonymous`).
#[derive(Debug, Default)]
pub struct NamespacePermissions;

#[async_trait]
impl SubscribeAuthorizer for NamespacePermissions {
    async fn authorize(&self, ctx: &SubscribeContext<'_>) -> Result<SubscribeGrant, ProtocolError> {
        let allowed = if ctx.user.is_empty() {
            ctx.options.allow_subscribe_for_anonymous
        } else {
            ctx.options.allow_subscribe_for_client
        };
        if allowed {
            Ok(SubscribeGrant::default())
        } else {
            Err(ERROR_PERMISSION_DENIED.into())
        }
    }
}
