//! A client's protocol state and its commands.
//!
//! Replies and pushes go through the client's queue, so they reach the socket in the order
//! the hub decided. Subscribing (and its recovery) is the pipeline in `subscribe.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use chorus_protocol::codes::{self, Disconnect, ProtocolError};
use chorus_protocol::frame::{
    ChannelRequest, ClientInfo, Command, ConnectRequest, ConnectResult, Empty, HistoryRequest,
    HistoryResult, Method, PresenceResult, PresenceStatsResult, PublishRequest, RefreshRequest,
    RefreshResult, SubRefreshRequest, SubRefreshResult, UnsubscribePush,
};
use chorus_protocol::proto::ToReply;
use serde_json::value::RawValue;

use super::frame;
use super::{ClientHandle, Control};
use crate::auth::token::now_unix;
use crate::auth::{ConnectClaims, TokenError};
use crate::broker::HistoryFilter;
use crate::metrics::Source;
use crate::node::{Node, VERSION};
use crate::proxy::calls::{self, Common};

/// One subscription of this client.
pub(super) struct Sub {
    pub(super) channel: Arc<str>,
    pub(super) expire_at: Option<i64>,
    pub(super) presence: bool,
    pub(super) join_leave: bool,
    pub(super) chan_info: Option<Arc<RawValue>>,
    /// The sub_refresh proxy extends it: the client is not asked to refresh.
    pub(super) proxy_refreshed: bool,
}

pub struct Session {
    pub(super) node: Arc<Node>,
    pub(super) handle: Arc<ClientHandle>,
    pub(super) connected: bool,
    pub(super) expire_at: Option<i64>,
    pub(super) subs: Vec<Sub>,
    /// What proxy requests name as the transport.
    pub(crate) transport: &'static str,
    /// The client's request headers some proxy passes on (`http_headers`); `None` when no
    /// proxy wants any.
    pub(crate) headers: Option<Arc<HeaderMap>>,
    /// An emulated connection's session id, the secret its `/emulation` requests name (not
    /// the client id, which presence shows to others).
    pub(crate) emulation: Option<Arc<str>>,
}

/// Why a command was refused: an error reply, or (a proxy's answer) closing the connection.
pub(super) enum Refusal {
    Error(ProtocolError),
    Disconnect(Disconnect),
}

impl From<ProtocolError> for Refusal {
    fn from(e: ProtocolError) -> Self {
        Refusal::Error(e)
    }
}

impl From<codes::StaticError> for Refusal {
    fn from(e: codes::StaticError) -> Self {
        Refusal::Error(e.into())
    }
}

pub(super) fn ttl(expire_at: Option<i64>) -> (bool, u32) {
    match expire_at {
        Some(t) => (true, (t - now_unix()).clamp(1, u32::MAX as i64) as u32),
        None => (false, 0),
    }
}

type Outcome = Result<(), Disconnect>;

impl Session {
    pub fn new(node: Arc<Node>, handle: Arc<ClientHandle>) -> Self {
        Session {
            node,
            handle,
            connected: false,
            expire_at: None,
            subs: Vec::new(),
            transport: "websocket",
            headers: None,
            emulation: None,
        }
    }

    /// The fields every proxy request of this client starts with.
    pub(super) fn proxy_common(&self) -> Common<'_> {
        calls::common(&self.handle.id, self.transport, self.handle.protocol)
    }

    /// What a client is told about its connection's expiry: nothing when the refresh proxy
    /// extends it on the server side.
    fn connection_ttl(&self) -> (bool, u32) {
        if self.node.proxies.refresh.is_some() {
            (false, 0)
        } else {
            ttl(self.expire_at)
        }
    }

    pub fn connected(&self) -> bool {
        self.connected
    }

    pub(super) fn reply<T: serde::Serialize + ToReply>(&self, id: u32, method: &str, result: &T) {
        self.node.metrics.sent_reply.inc();
        let p = self.handle.protocol;
        self.handle.send(frame::reply(p, id, method, result));
    }

    fn reply_error(&self, id: u32, e: &ProtocolError) {
        self.node.metrics.sent_reply.inc();
        self.handle.send(frame::error(self.handle.protocol, id, e));
    }

    pub(super) fn client_info(&self, chan_info: Option<Arc<RawValue>>) -> ClientInfo {
        ClientInfo {
            user: self.handle.user().to_owned(),
            client: self.handle.id.to_string(),
            conn_info: self.handle.conn_info().cloned(),
            chan_info,
        }
    }

    pub(super) fn subscribed(&self, channel: &str) -> bool {
        self.subs.iter().any(|s| &*s.channel == channel)
    }

    /// Handles one command. An `Err` closes the connection with that code.
    pub async fn handle(&mut self, cmd: Command) -> Outcome {
        let name = cmd.method.name();
        self.node
            .metrics
            .messages_received
            .with_label_values(&[name])
            .inc();
        let started = Instant::now();
        if !self.connected && !matches!(cmd.method, Method::Connect(_) | Method::Pong) {
            return Err(codes::DISCONNECT_BAD_REQUEST);
        }
        let id = cmd.id;
        let result: Result<(), Refusal> = match cmd.method {
            Method::Pong => Ok(()),
            Method::Connect(req) => return self.connect(id, req).await,
            Method::Subscribe(req) => self.subscribe(id, req).await.map_err(Refusal::from),
            Method::Unsubscribe(req) => {
                self.unsubscribe(&req.channel).await;
                self.reply(id, "unsubscribe", &Empty {});
                Ok(())
            }
            Method::Publish(req) => self.publish(id, req).await,
            Method::Presence(req) => self.presence(id, req, false).await.map_err(Refusal::from),
            Method::PresenceStats(req) => self.presence(id, req, true).await.map_err(Refusal::from),
            Method::History(req) => self.history(id, req).await.map_err(Refusal::from),
            Method::Refresh(req) => return self.refresh(id, req).await,
            Method::SubRefresh(req) => self.sub_refresh(id, req).map_err(Refusal::from),
            // No asynchronous message handler is configured: the client cannot be told by a
            // reply (send has none), so it is told by the close code.
            Method::Send(_) => return Err(codes::DISCONNECT_NOT_AVAILABLE),
            Method::Rpc(req) => self.rpc(id, req).await,
        };
        self.node
            .metrics
            .command_duration
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {}
            Err(Refusal::Disconnect(d)) => return Err(d),
            Err(Refusal::Error(_)) if id == 0 => return Err(codes::DISCONNECT_BAD_REQUEST),
            Err(Refusal::Error(e)) => self.reply_error(id, &e),
        }
        Ok(())
    }

    async fn connect(&mut self, id: u32, req: ConnectRequest) -> Outcome {
        if self.connected {
            return Err(codes::DISCONNECT_BAD_REQUEST);
        }
        let cfg = &self.node.config.client;
        let mut connect_data = None;
        let mut claims = if req.token.is_empty() && self.node.proxies.connect.is_some() {
            match self.connect_proxy(&req).await {
                Ok((claims, data)) => {
                    connect_data = data;
                    claims
                }
                Err(Refusal::Error(e)) => {
                    self.reply_error(id, &e);
                    return Ok(());
                }
                Err(Refusal::Disconnect(d)) => return Err(d),
            }
        } else if req.token.is_empty() {
            if !(cfg.insecure || cfg.allow_anonymous_connect_without_token) {
                tracing::info!(client = %self.handle.id, "client credentials not found");
                return Err(codes::DISCONNECT_BAD_REQUEST);
            }
            ConnectClaims::default()
        } else {
            match self.node.connect_tokens.verify::<ConnectClaims>(&req.token) {
                Ok(c) => {
                    if let Some(e) = self.withdrawal(&c).await {
                        self.reply_error(id, &e);
                        return Ok(());
                    }
                    c
                }
                Err(TokenError::Expired) => {
                    self.reply_error(id, &codes::ERROR_TOKEN_EXPIRED.into());
                    return Ok(());
                }
                Err(TokenError::Invalid(reason)) if !cfg.insecure => {
                    tracing::info!(client = %self.handle.id, %reason, "invalid connection token");
                    return Err(codes::DISCONNECT_INVALID_TOKEN);
                }
                Err(TokenError::Invalid(_)) => ConnectClaims::default(),
            }
        };
        if claims.sub.is_empty()
            && !req.token.is_empty()
            && cfg.disallow_anonymous_connection_tokens
        {
            return Err(codes::DISCONNECT_PERMISSION_DENIED);
        }
        if cfg.user_connection_limit > 0
            && !claims.sub.is_empty()
            && self.node.hub.user_clients(&claims.sub).len() >= cfg.user_connection_limit
        {
            return Err(codes::DISCONNECT_CONNECTION_LIMIT);
        }
        self.handle.set_identity(
            claims.sub.as_str().into(),
            claims.info.take().map(Arc::from),
        );
        self.expire_at = claims.expires_at();
        self.node.hub.add_client(&self.handle);
        self.connected = true;

        // Server-side subscriptions are set up held back, so the connect reply goes first.
        let mut subs = BTreeMap::new();
        let mut tops = Vec::new();
        for channel in claims.channels.iter().filter(|c| !c.is_empty()) {
            let Ok(opts) = self.node.channel_options(channel).cloned() else {
                tracing::warn!(client = %self.handle.id, %channel, "server-side channel in unknown namespace skipped");
                continue;
            };
            let wanted = req.subs.get(channel);
            match self.setup_server_subscription(&opts, channel, wanted).await {
                Ok((result, point)) => {
                    tops.push((channel.clone(), point));
                    subs.insert(channel.clone(), result);
                }
                Err(e) => {
                    tracing::warn!(client = %self.handle.id, %channel, error = %e, "server-side subscription failed")
                }
            }
        }
        let (expires, ttl) = self.connection_ttl();
        let result = ConnectResult {
            client: self.handle.id.to_string(),
            version: VERSION.into(),
            expires,
            ttl,
            data: connect_data,
            subs,
            ping: self.node.config.ping_interval().as_secs().max(1) as u32,
            pong: true,
            node: self.node.uid.clone(),
            session: self.emulation.as_deref().unwrap_or_default().to_owned(),
        };
        self.reply(id, "connect", &result);
        for (channel, point) in tops {
            self.node
                .hub
                .finish_sync(&channel, &self.handle, None, point.top, point.epoch());
        }
        Ok(())
    }

    fn allowed(
        &self,
        for_client: bool,
        for_subscriber: bool,
        for_anonymous: bool,
        channel: &str,
    ) -> bool {
        let anonymous = self.handle.user().is_empty();
        self.node.config.client.insecure
            || (for_client && !anonymous)
            || (for_anonymous && anonymous)
            || (for_subscriber && self.subscribed(channel))
    }

    async fn publish(&mut self, id: u32, req: PublishRequest) -> Result<(), Refusal> {
        let opts = self.node.client_channel_options(&req.channel)?.clone();
        let mut data = req
            .data
            .ok_or(ProtocolError::from(codes::ERROR_BAD_REQUEST))?;
        let mut skip_history = false;
        if opts.publish_proxy_enabled {
            // The backend decides instead of the allow_publish_* options, and may rewrite.
            let result = self.publish_proxy(&opts, &req.channel, &data).await?;
            if let Some(rewritten) = result.data {
                data = rewritten;
            }
            skip_history = result.skip_history;
        } else if !self.allowed(
            opts.allow_publish_for_client,
            opts.allow_publish_for_subscriber,
            opts.allow_publish_for_anonymous,
            &req.channel,
        ) {
            return Err(codes::ERROR_PERMISSION_DENIED.into());
        }
        let chan_info = self
            .subs
            .iter()
            .find(|s| *s.channel == *req.channel)
            .and_then(|s| s.chan_info.clone());
        let info = self.client_info(chan_info);
        self.node
            .publish(
                Source::Client,
                &req.channel,
                data,
                Some(info),
                None,
                None,
                skip_history,
                false,
            )
            .await?;
        self.reply(id, "publish", &Empty {});
        Ok(())
    }

    async fn presence(
        &mut self,
        id: u32,
        req: ChannelRequest,
        stats: bool,
    ) -> Result<(), ProtocolError> {
        let opts = self.node.client_channel_options(&req.channel)?;
        if !opts.presence {
            return Err(codes::ERROR_NOT_AVAILABLE.into());
        }
        if !self.allowed(
            opts.allow_presence_for_client,
            opts.allow_presence_for_subscriber,
            opts.allow_presence_for_anonymous,
            &req.channel,
        ) {
            return Err(codes::ERROR_PERMISSION_DENIED.into());
        }
        let internal = |e: crate::presence::PresenceError| {
            tracing::warn!(error = %e, "presence read failed");
            ProtocolError::from(codes::ERROR_INTERNAL)
        };
        if stats {
            let (num_clients, num_users) = self
                .node
                .presence
                .stats(&req.channel)
                .await
                .map_err(internal)?;
            self.reply(
                id,
                "presence_stats",
                &PresenceStatsResult {
                    num_clients,
                    num_users,
                },
            );
        } else {
            let presence = self
                .node
                .presence
                .presence(&req.channel)
                .await
                .map_err(internal)?;
            self.reply(id, "presence", &PresenceResult { presence });
        }
        Ok(())
    }

    async fn history(&mut self, id: u32, req: HistoryRequest) -> Result<(), ProtocolError> {
        let opts = self.node.client_channel_options(&req.channel)?;
        if !self.allowed(
            opts.allow_history_for_client,
            opts.allow_history_for_subscriber,
            opts.allow_history_for_anonymous,
            &req.channel,
        ) {
            return Err(codes::ERROR_PERMISSION_DENIED.into());
        }
        let max = self.node.config.client.history_max_publication_limit;
        let limit = match req.limit {
            0 => 0,
            n if n < 0 => max,
            n => (n as usize).min(max),
        };
        let filter = HistoryFilter {
            since: req.since,
            limit: Some(limit),
            reverse: req.reverse,
        };
        let page = self.node.history(&req.channel, &filter).await?;
        let result = HistoryResult {
            publications: page.publications,
            epoch: page.position.epoch,
            offset: page.position.offset,
        };
        self.reply(id, "history", &result);
        Ok(())
    }

    /// The refusal of a token a backend withdrew (`invalidate_user_tokens`: issued before its
    /// user's line): expired, so the SDK asks for a new one. When the engine cannot say, an
    /// internal error the SDK retries: never let through. `None`: the token stands.
    async fn withdrawal(&self, claims: &ConnectClaims) -> Option<ProtocolError> {
        match self.node.revoked.issued_before(&claims.sub).await {
            Ok(line) if crate::revoked::still_valid(claims.iat, line) => None,
            Ok(_) => Some(codes::ERROR_TOKEN_EXPIRED.into()),
            Err(e) => {
                tracing::warn!(client = %self.handle.id, error = %e, "token invalidations unavailable; token refused for now");
                Some(codes::ERROR_INTERNAL.into())
            }
        }
    }

    async fn refresh(&mut self, id: u32, req: RefreshRequest) -> Outcome {
        let verified = self.node.connect_tokens.verify::<ConnectClaims>(&req.token);
        if let Ok(claims) = &verified {
            if let Some(e) = self.withdrawal(claims).await {
                self.reply_error(id, &e);
                return Ok(());
            }
        }
        match verified {
            Ok(claims) if claims.sub == self.handle.user() => {
                self.expire_at = claims.expires_at();
                let (expires, ttl) = self.connection_ttl();
                let result = RefreshResult {
                    client: self.handle.id.to_string(),
                    version: VERSION.into(),
                    expires,
                    ttl,
                };
                self.reply(id, "refresh", &result);
                Ok(())
            }
            Ok(_) => Err(codes::DISCONNECT_INVALID_TOKEN),
            Err(TokenError::Expired) => {
                self.reply_error(id, &codes::ERROR_TOKEN_EXPIRED.into());
                Ok(())
            }
            Err(TokenError::Invalid(_)) => Err(codes::DISCONNECT_INVALID_TOKEN),
        }
    }

    fn sub_refresh(&mut self, id: u32, req: SubRefreshRequest) -> Result<(), ProtocolError> {
        let claims = self.subscription_claims(&req.token, &req.channel)?;
        let user_sub = self.subs.iter_mut().find(|s| *s.channel == *req.channel);
        let Some(sub) = user_sub else {
            return Err(codes::ERROR_PERMISSION_DENIED.into());
        };
        sub.expire_at = claims.expires_at();
        let (expires, ttl) = ttl(sub.expire_at);
        self.reply(id, "sub_refresh", &SubRefreshResult { expires, ttl });
        Ok(())
    }

    /// Tells the client a subscription ended; codes from 2500 make the SDK resubscribe.
    pub(super) fn push_unsubscribe(&self, channel: &str, (code, reason): (u32, &str)) {
        let body = UnsubscribePush { code, reason };
        let push = frame::push(self.handle.protocol, channel, "unsubscribe", &body);
        self.handle.send(push);
    }

    /// Closes an expired connection and drops expired subscriptions (the SDK resubscribes
    /// with a fresh token). Called on the connection's timer.
    pub async fn check_expiry(&mut self) -> Outcome {
        let now = now_unix();
        if self.node.proxies.refresh.is_some() {
            // The backend extends the connection; the client is never asked.
            if self.expire_at.is_some_and(|t| now >= t) {
                self.refresh_proxy().await?;
            }
        } else if self.expire_at.is_some_and(|t| {
            now >= t + self.node.config.client.expired_close_delay.0.as_secs() as i64
        }) {
            return Err(codes::DISCONNECT_EXPIRED);
        }
        self.sub_refresh_proxies(now).await?;
        let delay = self.node.config.client.expired_sub_close_delay.0.as_secs() as i64;
        let expired: Vec<Arc<str>> = self
            .subs
            .iter()
            .filter(|s| !s.proxy_refreshed && s.expire_at.is_some_and(|t| now >= t + delay))
            .map(|s| s.channel.clone())
            .collect();
        for channel in expired {
            self.unsubscribe(&channel).await;
            self.push_unsubscribe(&channel, codes::UNSUBSCRIBE_EXPIRED);
        }
        Ok(())
    }

    /// Runs a server-side action queued by the server API.
    pub async fn control(&mut self, c: Control) -> Outcome {
        if !self.connected {
            return Ok(());
        }
        match c {
            Control::Subscribe { channel } => {
                if self.subscribed(&channel) {
                    return Ok(());
                }
                let Ok(opts) = self.node.channel_options(&channel).cloned() else {
                    return Ok(());
                };
                match self.setup_server_subscription(&opts, &channel, None).await {
                    Ok((result, point)) => {
                        let push =
                            frame::push(self.handle.protocol, &channel, "subscribe", &result);
                        self.node.hub.finish_sync(
                            &channel,
                            &self.handle,
                            Some(push),
                            point.top,
                            point.epoch(),
                        );
                    }
                    Err(e) => {
                        tracing::warn!(client = %self.handle.id, %channel, error = %e, "server subscribe failed")
                    }
                }
            }
            Control::Unsubscribe { channel } => {
                if self.unsubscribe(&channel).await {
                    self.push_unsubscribe(&channel, codes::UNSUBSCRIBE_SERVER);
                }
            }
            Control::Refresh { expired: true, .. } => return Err(codes::DISCONNECT_EXPIRED),
            Control::Refresh { expire_at, .. } => self.expire_at = expire_at,
        }
        Ok(())
    }

    /// Releases everything the session holds; called once when the connection ends.
    pub async fn close(&mut self) {
        for sub in std::mem::take(&mut self.subs) {
            self.release(sub).await;
        }
        if self.connected {
            self.node.hub.remove_client(&self.handle);
        }
    }
}
