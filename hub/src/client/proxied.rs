//! A session's proxy calls (see [`crate::proxy`]): connect without a token, the server-side
//! refresh of a connection and of subscriptions, client publications and RPCs.
//!
//! The rule is the subscribe proxy's: a backend that gives no usable answer (down, slow,
//! garbage) is a temporary error (100) for a command and a retry on the next tick for a
//! refresh, never a grant.

use std::sync::Arc;

use chorus_protocol::codes;
use chorus_protocol::frame::{ConnectRequest, Data, RpcRequest, RpcResult};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use super::session::{Refusal, Session};
use crate::auth::ConnectClaims;
use crate::config::ChannelOptions;
use crate::proxy::calls::{self, PublishResult, RefreshResult};
use crate::proxy::{Answer, ChannelKind, HttpProxy};

type Outcome = Result<(), codes::Disconnect>;

impl Session {
    /// Calls `proxy`; a failure is logged under `what` and becomes error 100.
    async fn ask<Q: Serialize, R: DeserializeOwned>(
        &self,
        proxy: &HttpProxy,
        what: &str,
        request: &Q,
    ) -> Result<R, Refusal> {
        match proxy.call(request, self.headers.as_deref()).await {
            Ok(Answer::Result(r)) => Ok(r),
            Ok(Answer::Error(e)) => Err(Refusal::Error(e)),
            Ok(Answer::Disconnect(d)) => Err(Refusal::Disconnect(d)),
            Err(failure) => {
                tracing::warn!(client = %self.handle.id, proxy = what, reason = %failure, "proxy failed");
                self.node
                    .metrics
                    .proxy_failures
                    .with_label_values(&[what])
                    .inc();
                Err(Refusal::Error(codes::ERROR_INTERNAL.into()))
            }
        }
    }

    /// The connect proxy's claims for a client that brought no token, and the data for its
    /// connect result.
    pub(super) async fn connect_proxy(
        &self,
        req: &ConnectRequest,
    ) -> Result<(ConnectClaims, Option<Data>), Refusal> {
        let proxy = self
            .node
            .proxies
            .connect
            .as_ref()
            .expect("checked by the caller");
        let request = calls::ConnectRequest {
            common: self.proxy_common(),
            name: &req.name,
            version: &req.version,
            data: req.data.as_deref(),
        };
        let r: calls::ConnectResult = self.ask(proxy, "connect", &request).await?;
        let claims = ConnectClaims {
            sub: r.user,
            expire_at: Some(r.expire_at),
            info: r.info,
            channels: r.channels,
            ..Default::default()
        };
        Ok((claims, r.data))
    }

    /// Extends an expired connection through the refresh proxy, or ends it. A failed call
    /// keeps the connection and asks again on the next tick.
    pub(super) async fn refresh_proxy(&mut self) -> Outcome {
        let proxy = self
            .node
            .proxies
            .refresh
            .as_ref()
            .expect("checked by the caller");
        let request = calls::RefreshRequest {
            common: self.proxy_common(),
            user: self.handle.user(),
        };
        match self
            .ask::<_, RefreshResult>(proxy, "refresh", &request)
            .await
        {
            Ok(r) if r.expired => Err(codes::DISCONNECT_EXPIRED),
            Ok(r) => {
                self.expire_at = (r.expire_at > 0).then_some(r.expire_at);
                Ok(())
            }
            Err(Refusal::Disconnect(d)) => Err(d),
            Err(Refusal::Error(_)) => Ok(()),
        }
    }

    /// Asks the sub_refresh proxy about each expired subscription it looks after.
    pub(super) async fn sub_refresh_proxies(&mut self, now: i64) -> Outcome {
        let due: Vec<Arc<str>> = self
            .subs
            .iter()
            .filter(|s| s.proxy_refreshed && s.expire_at.is_some_and(|t| now >= t))
            .map(|s| s.channel.clone())
            .collect();
        for channel in due {
            let Ok(opts) = self.node.channel_options(&channel).cloned() else {
                continue;
            };
            let name = &opts.sub_refresh_proxy_name;
            let Some(proxy) = self.node.proxies.channel(ChannelKind::SubRefresh, name) else {
                continue;
            };
            let request = calls::SubRefreshRequest {
                common: self.proxy_common(),
                user: self.handle.user(),
                channel: &channel,
            };
            match self
                .ask::<_, RefreshResult>(proxy, "sub_refresh", &request)
                .await
            {
                Ok(r) if r.expired => {
                    if self.unsubscribe(&channel).await {
                        self.push_unsubscribe(&channel, codes::UNSUBSCRIBE_EXPIRED);
                    }
                }
                Ok(r) => {
                    if let Some(sub) = self.subs.iter_mut().find(|s| s.channel == channel) {
                        sub.expire_at = (r.expire_at > 0).then_some(r.expire_at);
                    }
                }
                Err(Refusal::Disconnect(d)) => return Err(d),
                Err(Refusal::Error(_)) => {}
            }
        }
        Ok(())
    }

    /// Whether (and as what) a client publication goes out, by the publish proxy.
    pub(super) async fn publish_proxy(
        &self,
        opts: &ChannelOptions,
        channel: &str,
        data: &RawValue,
    ) -> Result<PublishResult, Refusal> {
        let name = &opts.publish_proxy_name;
        let Some(proxy) = self.node.proxies.channel(ChannelKind::Publish, name) else {
            return Err(codes::ERROR_INTERNAL.into());
        };
        let request = calls::PublishRequest {
            common: self.proxy_common(),
            user: self.handle.user(),
            channel,
            data,
        };
        self.ask(proxy, "publish", &request).await
    }

    /// A client RPC: to the proxy of the method's RPC namespace, else method not found.
    pub(super) async fn rpc(&mut self, id: u32, req: RpcRequest) -> Result<(), Refusal> {
        let rpc = &self.node.config.rpc;
        let namespace = req
            .method
            .split_once(rpc.namespace_boundary.as_str())
            .map_or("", |(ns, _)| ns);
        let options = if namespace.is_empty() {
            Some(&rpc.without_namespace)
        } else {
            rpc.namespaces
                .iter()
                .find(|n| n.name == namespace)
                .map(|n| &n.options)
        };
        let proxy = options
            .filter(|o| o.proxy_enabled)
            .and_then(|o| self.node.proxies.rpc(&o.proxy_name));
        let Some(proxy) = proxy else {
            return Err(codes::ERROR_METHOD_NOT_FOUND.into());
        };
        let request = calls::RpcRequest {
            common: self.proxy_common(),
            user: self.handle.user(),
            method: &req.method,
            data: req.data.as_deref(),
        };
        let r: calls::RpcResult = self.ask(proxy, "rpc", &request).await?;
        self.reply(id, "rpc", &RpcResult { data: r.data });
        Ok(())
    }
}
