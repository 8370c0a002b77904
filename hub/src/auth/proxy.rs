//! The subscribe proxy: Centrifugo v6 `channel.proxy.subscribe` (or the named proxy of the
//! namespace's `subscribe_proxy_name`). For a namespace with `subscribe_proxy_enabled`, the
//! hub asks the backend through [`crate::proxy::HttpProxy::call`] and does what it says.
//!
//! Request: `{"client","transport","protocol","encoding","user","channel","data"?}`.
//! Answer: `{"result": {"info"?, "expire_at"?}}` grants, `{"error": {...}}` refuses with that
//! error, `{"disconnect": {...}}` refuses (the connection stays: an authorizer answers one
//! command). It never fails open: no usable answer is Centrifugo's internal error (100,
//! temporary), which the SDKs retry with backoff.

use std::sync::Arc;

use async_trait::async_trait;
use chorus_protocol::codes::{self, ProtocolError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::authorizer::{
    NamespacePermissions, SubscribeAuthorizer, SubscribeContext, SubscribeGrant,
};
use crate::proxy::calls::Common;
use crate::proxy::{Answer, ChannelKind, Proxies};

#[derive(Serialize)]
struct ProxyRequest<'a> {
    #[serde(flatten)]
    common: Common<'a>,
    user: &'a str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ProxyResult {
    info: Option<Box<RawValue>>,
    expire_at: Option<i64>,
}

/// Calls the backend for namespaces that enable it; namespace permissions for the rest.
pub struct SubscribeProxy {
    proxies: Arc<Proxies>,
    fallback: NamespacePermissions,
}

impl SubscribeProxy {
    pub fn new(proxies: Arc<Proxies>) -> Arc<SubscribeProxy> {
        Arc::new(SubscribeProxy {
            proxies,
            fallback: NamespacePermissions,
        })
    }
}

#[async_trait]
impl SubscribeAuthorizer for SubscribeProxy {
    async fn authorize(&self, ctx: &SubscribeContext<'_>) -> Result<SubscribeGrant, ProtocolError> {
        if !ctx.options.subscribe_proxy_enabled {
            return self.fallback.authorize(ctx).await;
        }
        let name = &ctx.options.subscribe_proxy_name;
        let Some(proxy) = self.proxies.channel(ChannelKind::Subscribe, name) else {
            // Validation makes this unreachable; refusing is the safe answer regardless.
            tracing::error!(channel = %ctx.channel, proxy = %name, "no subscribe proxy configured");
            return Err(codes::ERROR_INTERNAL.into());
        };
        let request = ProxyRequest {
            common: ctx.common(),
            user: ctx.user,
            channel: ctx.channel,
            data: ctx.data,
        };
        match proxy.call::<_, ProxyResult>(&request, ctx.headers).await {
            Ok(Answer::Result(result)) => Ok(SubscribeGrant {
                info: result.info.map(Arc::from),
                expire_at: result.expire_at.filter(|&t| t > 0),
            }),
            Ok(Answer::Error(e)) => Err(e),
            Ok(Answer::Disconnect(d)) => {
                tracing::info!(channel = %ctx.channel, user = %ctx.user, code = d.code, "subscribe proxy asked to disconnect; refusing the subscription");
                Err(codes::ERROR_PERMISSION_DENIED.into())
            }
            Err(failure) => {
                tracing::warn!(channel = %ctx.channel, user = %ctx.user, reason = %failure, "subscribe proxy failed");
                Err(codes::ERROR_INTERNAL.into())
            }
        }
    }
}
