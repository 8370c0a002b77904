//! The subscribe proxy: Centrifugo v6 `channel.proxy.subscribe`. For a namespace with
//! `subscribe_proxy_enabled`, the hub POSTs Centrifugo's proxy request to the backend and
//! does what the answer says.
//!
//! Request: `{"client","transport","protocol","encoding","user","channel","data"?}`.
//! Answer: `{"result": {"info"?, "expire_at"?}}` grants, `{"error": {"code","message"}}`
//! refuses with that error, `{"disconnect": {...}}` refuses (see below). An answer with none
//! of these is a broken backend (Centrifugo would grant it).
//!
//! It never fails open: a backend that is down, slow past `timeout`, answers non-200 or
//! answers something that is not the shape above gets Centrifugo's internal error (100,
//! temporary), which the SDKs retry with backoff.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chorus_protocol::codes::{self, ProtocolError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::authorizer::{
    NamespacePermissions, SubscribeAuthorizer, SubscribeContext, SubscribeGrant,
};
use crate::config::ProxyEndpoint;

#[derive(Serialize)]
struct ProxyRequest<'a> {
    client: &'a str,
    transport: &'static str,
    protocol: &'static str,
    encoding: &'static str,
    user: &'a str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ProxyReply {
    result: Option<ProxyResult>,
    error: Option<ProxyError>,
    disconnect: Option<ProxyDisconnect>,
}

#[derive(Deserialize)]
struct ProxyResult {
    info: Option<Box<RawValue>>,
    expire_at: Option<i64>,
}

#[derive(Deserialize)]
struct ProxyError {
    code: u32,
    message: String,
    #[serde(default)]
    temporary: bool,
}

#[derive(Deserialize)]
struct ProxyDisconnect {
    code: u32,
    reason: String,
}

/// Calls the backend for namespaces that enable it; namespace permissions for the rest.
pub struct SubscribeProxy {
    http: reqwest::Client,
    endpoint: String,
    timeout: Duration,
    headers: reqwest::header::HeaderMap,
    fallback: NamespacePermissions,
}

impl SubscribeProxy {
    pub fn new(config: &ProxyEndpoint) -> anyhow::Result<Arc<SubscribeProxy>> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.static_http_headers {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| anyhow::anyhow!("static_http_headers: {name:?}: {e}"))?,
                reqwest::header::HeaderValue::from_str(value)
                    .map_err(|e| anyhow::anyhow!("static_http_headers: {name:?}: {e}"))?,
            );
        }
        Ok(Arc::new(SubscribeProxy {
            http: reqwest::Client::builder().build()?,
            endpoint: config.endpoint.clone(),
            timeout: config.timeout.0,
            headers,
            fallback: NamespacePermissions,
        }))
    }

    async fn call(&self, ctx: &SubscribeContext<'_>) -> Result<ProxyReply, String> {
        let body = serde_json::to_vec(&ProxyRequest {
            client: ctx.client,
            transport: "websocket",
            protocol: "json",
            encoding: "json",
            user: ctx.user,
            channel: ctx.channel,
            data: ctx.data,
        })
        .expect("invariant: the proxy request serializes");
        let response = self
            .http
            .post(&self.endpoint)
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| format!("{e}"))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| format!("{e}"))?;
        if !status.is_success() {
            return Err(format!("status {status}"));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("unexpected answer: {e}"))
    }
}

#[async_trait]
impl SubscribeAuthorizer for SubscribeProxy {
    async fn authorize(&self, ctx: &SubscribeContext<'_>) -> Result<SubscribeGrant, ProtocolError> {
        if !ctx.options.subscribe_proxy_enabled {
            return self.fallback.authorize(ctx).await;
        }
        let reply = match self.call(ctx).await {
            Ok(r) => r,
            Err(reason) => {
                tracing::warn!(channel = %ctx.channel, user = %ctx.user, %reason, "subscribe proxy failed");
                return Err(codes::ERROR_INTERNAL.into());
            }
        };
        if let Some(e) = reply.error {
            return Err(ProtocolError {
                code: e.code,
                message: e.message,
                temporary: e.temporary,
            });
        }
        if let Some(d) = reply.disconnect {
            // A subscribe authorizer answers one command; dropping the whole connection from
            // here is not wired, so the subscription is refused and the advice logged.
            tracing::info!(channel = %ctx.channel, user = %ctx.user, code = d.code, reason = %d.reason, "subscribe proxy asked to disconnect; refusing the subscription");
            return Err(codes::ERROR_PERMISSION_DENIED.into());
        }
        // Centrifugo grants an answer with neither `result` nor `error`; Chorus reads that as a
        // broken backend instead, since a grant must be said, not implied.
        let Some(result) = reply.result else {
            tracing::warn!(channel = %ctx.channel, user = %ctx.user, "subscribe proxy answered neither result nor error");
            return Err(codes::ERROR_INTERNAL.into());
        };
        Ok(SubscribeGrant {
            info: result.info.map(Arc::from),
            expire_at: result.expire_at.filter(|&t| t > 0),
        })
    }
}
