//! A client's protocol state and its commands.
//!
//! Replies and pushes go through the client's queue, so they reach the socket in the order
//! the hub decided. Subscribing (and its recovery) is the pipeline in `subscribe.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chorus_protocol::codes::{self, Disconnect, ProtocolError};
use chorus_protocol::frame::{
    ChannelRequest, ClientInfo, Command, ConnectRequest, ConnectResult, Empty, HistoryRequest,
    HistoryResult, Method, PresenceResult, PresenceStatsResult, PublishRequest, RefreshRequest,
    RefreshResult, SubRefreshRequest, SubRefreshResult, UnsubscribePush,
};
use chorus_protocol::proto::ToReply;
use serde_json::value::RawValue;

use super::frame;
use super::subscribe::server_spec;
use super::{ClientHandle, Control};
use crate::auth::{ConnectClaims, TokenError};
use crate::broker::HistoryFilter;
use crate::metrics::Source;
use crate::node::{Node, VERSION};

/// One subscription of this client.
pub(super) struct Sub {
    pub(super) channel: Arc<str>,
    pub(super) expire_at: Option<i64>,
    pub(super) presence: bool,
    pub(super) join_leave: bool,
    pub(super) chan_info: Option<Arc<RawValue>>,
}

pub struct Session {
    pub(super) node: Arc<Node>,
    pub(super) handle: Arc<ClientHandle>,
    pub(super) connected: bool,
    pub(super) expire_at: Option<i64>,
    pub(super) subs: Vec<Sub>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
        }
    }

    pub fn connected(&self) -> bool {
        self.connected
    }

    fn reply<T: serde::Serialize + ToReply>(&self, id: u32, method: &str, result: &T) {
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
        let result = match cmd.method {
            Method::Pong => Ok(()),
            Method::Connect(req) => return self.connect(id, req).await,
            Method::Subscribe(req) => self.subscribe(id, req).await,
            Method::Unsubscribe(req) => {
                self.unsubscribe(&req.channel).await;
                self.reply(id, "unsubscribe", &Empty {});
                Ok(())
            }
            Method::Publish(req) => self.publish(id, req).await,
            Method::Presence(req) => self.presence(id, req, false).await,
            Method::PresenceStats(req) => self.presence(id, req, true).await,
            Method::History(req) => self.history(id, req).await,
            Method::Refresh(req) => return self.refresh(id, req),
            Method::SubRefresh(req) => self.sub_refresh(id, req),
            // No asynchronous message handler is configured: the client cannot be told by a
            // reply (send has none), so it is told by the close code.
            Method::Send(_) => return Err(codes::DISCONNECT_NOT_AVAILABLE),
            Method::Rpc(_) => Err(codes::ERROR_METHOD_NOT_FOUND.into()),
        };
        self.node
            .metrics
            .command_duration
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            if id == 0 {
                return Err(codes::DISCONNECT_BAD_REQUEST);
            }
            self.reply_error(id, &e);
        }
        Ok(())
    }

    async fn connect(&mut self, id: u32, req: ConnectRequest) -> Outcome {
        if self.connected {
            return Err(codes::DISCONNECT_BAD_REQUEST);
        }
        let cfg = &self.node.config.client;
        let mut claims = if req.token.is_empty() {
            if !(cfg.insecure || cfg.allow_anonymous_connect_without_token) {
                tracing::info!(client = %self.handle.id, "client credentials not found");
                return Err(codes::DISCONNECT_BAD_REQUEST);
            }
            ConnectClaims::default()
        } else {
            match self.node.connect_tokens.verify::<ConnectClaims>(&req.token) {
                Ok(c) => c,
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
            let spec = server_spec(channel, &opts, wanted);
            match self.setup_subscription(&opts, spec).await {
                Ok((result, point)) => {
                    tops.push((channel.clone(), point));
                    subs.insert(channel.clone(), result);
                }
                Err(e) => {
                    tracing::warn!(client = %self.handle.id, %channel, error = %e, "server-side subscription failed")
                }
            }
        }
        let (expires, ttl) = ttl(self.expire_at);
        let result = ConnectResult {
            client: self.handle.id.to_string(),
            version: VERSION.into(),
            expires,
            ttl,
            subs,
            ping: self.node.config.ping_interval().as_secs().max(1) as u32,
            pong: true,
            node: self.node.uid.clone(),
            ..Default::default()
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

    async fn publish(&mut self, id: u32, req: PublishRequest) -> Result<(), ProtocolError> {
        let opts = self.node.channel_options(&req.channel)?;
        if !self.allowed(
            opts.allow_publish_for_client,
            opts.allow_publish_for_subscriber,
            opts.allow_publish_for_anonymous,
            &req.channel,
        ) {
            return Err(codes::ERROR_PERMISSION_DENIED.into());
        }
        let data = req
            .data
            .ok_or(ProtocolError::from(codes::ERROR_BAD_REQUEST))?;
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
        let opts = self.node.channel_options(&req.channel)?;
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
        let opts = self.node.channel_options(&req.channel)?;
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

    fn refresh(&mut self, id: u32, req: RefreshRequest) -> Outcome {
        match self.node.connect_tokens.verify::<ConnectClaims>(&req.token) {
            Ok(claims) if claims.sub == self.handle.user() => {
                self.expire_at = claims.expires_at();
                let (expires, ttl) = ttl(self.expire_at);
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
    fn push_unsubscribe(&self, channel: &str, (code, reason): (u32, &str)) {
        let body = UnsubscribePush { code, reason };
        let push = frame::push(self.handle.protocol, channel, "unsubscribe", &body);
        self.handle.send(push);
    }

    /// Closes an expired connection and drops expired subscriptions (the SDK resubscribes
    /// with a fresh token). Called on the connection's timer.
    pub async fn check_expiry(&mut self) -> Outcome {
        let now = now_unix();
        let cfg = &self.node.config.client;
        if self
            .expire_at
            .is_some_and(|t| now >= t + cfg.expired_close_delay.0.as_secs() as i64)
        {
            return Err(codes::DISCONNECT_EXPIRED);
        }
        let delay = cfg.expired_sub_close_delay.0.as_secs() as i64;
        let expired: Vec<Arc<str>> = self
            .subs
            .iter()
            .filter(|s| s.expire_at.is_some_and(|t| now >= t + delay))
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
                let spec = server_spec(&channel, &opts, None);
                match self.setup_subscription(&opts, spec).await {
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
