//! A client's protocol state and its commands.
//!
//! Replies and pushes go through the client's queue, so they reach the socket in the order
//! the hub decided. A subscription is set up with its channel "held back": live publications
//! that race the subscribe reply are buffered and released after it, minus any the reply
//! already carried (by offset), so a client never sees a gap or a duplicate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use chorus_protocol::channel::ChannelName;
use chorus_protocol::codes::{self, Disconnect, ProtocolError};
use chorus_protocol::frame::{
    encode_error, encode_push, encode_reply, ChannelRequest, ClientInfo, Command, ConnectRequest,
    ConnectResult, Empty, HistoryRequest, HistoryResult, Method, PresenceResult,
    PresenceStatsResult, PublishRequest, RefreshRequest, RefreshResult, SubRefreshRequest,
    SubRefreshResult, SubscribeRequest, SubscribeResult, UnsubscribePush,
    SUBSCRIBE_FLAG_REJECT_UNRECOVERED,
};
use serde_json::value::RawValue;

use super::{ClientHandle, Control};
use crate::auth::{ConnectClaims, SubscribeClaims, SubscribeContext, SubscribeGrant, TokenError};
use crate::broker::{BrokerError, HistoryFilter};
use crate::config::ChannelOptions;
use crate::node::{broker_error, Node};

pub const VERSION: &str = concat!("chorus ", env!("CARGO_PKG_VERSION"));

/// One subscription of this client.
struct Sub {
    channel: Arc<str>,
    expire_at: Option<i64>,
    presence: bool,
    join_leave: bool,
    chan_info: Option<Arc<RawValue>>,
}

pub struct Session {
    node: Arc<Node>,
    handle: Arc<ClientHandle>,
    connected: bool,
    expire_at: Option<i64>,
    subs: Vec<Sub>,
}

/// Where a new subscriber stands once its reply is built: the stream's top offset, and its
/// epoch when the subscription is positioned.
#[derive(Default)]
struct SyncPoint {
    top: u64,
    epoch: Option<String>,
}

impl SyncPoint {
    fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }
}

/// How a subscribe is asked for: by the client, or by the server (token, API).
struct SubscribeSpec<'a> {
    channel: &'a str,
    recover: Option<(u64, &'a str)>,
    recoverable: bool,
    positioned: bool,
    join_leave: bool,
    reject_unrecovered: bool,
    grant: SubscribeGrant,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn ttl(expire_at: Option<i64>) -> (bool, u32) {
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

    fn reply<T: serde::Serialize>(&self, id: u32, method: &str, result: &T) {
        self.node.metrics.sent_reply.inc();
        self.handle
            .send(Utf8Bytes::from(encode_reply(id, method, result)));
    }

    fn reply_error(&self, id: u32, e: &ProtocolError) {
        self.node.metrics.sent_reply.inc();
        self.handle.send(Utf8Bytes::from(encode_error(id, e)));
    }

    fn client_info(&self, chan_info: Option<Arc<RawValue>>) -> ClientInfo {
        ClientInfo {
            user: self.handle.user().to_owned(),
            client: self.handle.id.to_string(),
            conn_info: self.handle.conn_info().cloned(),
            chan_info,
        }
    }

    fn subscribed(&self, channel: &str) -> bool {
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

    async fn subscribe(&mut self, id: u32, req: SubscribeRequest) -> Result<(), ProtocolError> {
        let opts = self.node.channel_options(&req.channel)?.clone();
        if self.subscribed(&req.channel) {
            return Err(codes::ERROR_ALREADY_SUBSCRIBED.into());
        }
        let grant = self.authorize(&req, &opts).await?;
        let recoverable = opts.force_recovery || (opts.allow_recovery && req.recoverable);
        let spec = SubscribeSpec {
            channel: &req.channel,
            recover: (req.recover && recoverable).then_some((req.offset, req.epoch.as_str())),
            recoverable,
            positioned: recoverable
                || opts.force_positioning
                || (opts.allow_positioning && req.positioned),
            join_leave: opts.join_leave && (opts.force_push_join_leave || req.join_leave),
            reject_unrecovered: req.flag & SUBSCRIBE_FLAG_REJECT_UNRECOVERED != 0,
            grant,
        };
        let (result, point) = self.setup_subscription(&opts, spec).await?;
        let reply = Utf8Bytes::from(encode_reply(id, "subscribe", &result));
        self.node.metrics.sent_reply.inc();
        self.node.hub.finish_sync(
            &req.channel,
            &self.handle,
            Some(reply),
            point.top,
            point.epoch(),
        );
        Ok(())
    }

    /// Centrifugo's order: subscription token, then private and user-limited channels, then
    /// the authorizer (namespace permissions or a subscribe proxy).
    async fn authorize(
        &self,
        req: &SubscribeRequest,
        opts: &ChannelOptions,
    ) -> Result<SubscribeGrant, ProtocolError> {
        let user = self.handle.user();
        if !req.token.is_empty() {
            let claims = match self
                .node
                .subscribe_tokens
                .verify::<SubscribeClaims>(&req.token)
            {
                Ok(c) => c,
                Err(TokenError::Expired) => return Err(codes::ERROR_TOKEN_EXPIRED.into()),
                Err(TokenError::Invalid(reason)) => {
                    tracing::info!(client = %self.handle.id, channel = %req.channel, %reason, "invalid subscription token");
                    return Err(codes::ERROR_PERMISSION_DENIED.into());
                }
            };
            if claims.channel != req.channel || claims.sub != user {
                return Err(codes::ERROR_PERMISSION_DENIED.into());
            }
            return Ok(SubscribeGrant {
                expire_at: claims.expires_at(),
                info: claims.info.map(Arc::from),
            });
        }
        if self.node.config.client.insecure {
            return Ok(SubscribeGrant::default());
        }
        let name = ChannelName::parse(&req.channel);
        if name.private {
            return Err(codes::ERROR_PERMISSION_DENIED.into());
        }
        if name.users.is_some() && opts.allow_user_limited_channels {
            return if name.allows_user(user) {
                Ok(SubscribeGrant::default())
            } else {
                Err(codes::ERROR_PERMISSION_DENIED.into())
            };
        }
        let ctx = SubscribeContext {
            client: &self.handle.id,
            user,
            channel: &req.channel,
            data: req.data.as_deref(),
            options: opts,
        };
        self.node.authorizer.authorize(&ctx).await
    }

    /// Adds the subscription (held back) and builds its result; the caller queues the reply
    /// and then calls `finish_sync` with the returned sync point.
    async fn setup_subscription(
        &mut self,
        opts: &ChannelOptions,
        spec: SubscribeSpec<'_>,
    ) -> Result<(SubscribeResult, SyncPoint), ProtocolError> {
        if self.subs.len() >= self.node.config.client.channel_limit {
            return Err(codes::ERROR_LIMIT_EXCEEDED.into());
        }
        let channel: Arc<str> = spec.channel.into();
        self.node
            .hub
            .subscribe(&channel, &self.handle, spec.join_leave, true);
        let mut result = SubscribeResult::default();
        let mut point = SyncPoint::default();
        // The engine delivers the channel here before its position is read, so nothing
        // published in between is lost.
        let mut ready = self.node.engine_subscribe(&channel).await;
        if ready.is_ok() && spec.positioned {
            ready = self
                .position_and_recover(&mut result, &spec)
                .await
                .map(|top| {
                    point = SyncPoint {
                        top,
                        epoch: Some(result.epoch.clone()),
                    }
                });
        }
        if let Err(e) = ready {
            self.node.hub.unsubscribe(&channel, &self.handle);
            self.handle.abort_sync(&channel);
            self.node.engine_release(&channel).await;
            return Err(e);
        }
        (result.expires, result.ttl) = ttl(spec.grant.expire_at);
        let info = self.client_info(spec.grant.info.clone());
        if opts.presence {
            if let Err(e) = self.node.presence.add(&channel, &info).await {
                tracing::warn!(%channel, error = %e, "presence add failed");
            }
        }
        if opts.join_leave {
            if let Err(e) = self.node.broker.publish_join(&channel, &info).await {
                tracing::warn!(%channel, error = %e, "join publish failed");
            }
        }
        // Exact capacity: most connections hold one or two subscriptions for hours.
        self.subs.reserve_exact(1);
        self.subs.push(Sub {
            channel,
            expire_at: spec.grant.expire_at,
            presence: opts.presence,
            join_leave: opts.join_leave,
            chan_info: spec.grant.info,
        });
        self.node.metrics.subscriptions.inc();
        Ok((result, point))
    }

    /// Fills the stream position, and the missed publications when recovering.
    async fn position_and_recover(
        &self,
        result: &mut SubscribeResult,
        spec: &SubscribeSpec<'_>,
    ) -> Result<u64, ProtocolError> {
        let meta_ttl = self.node.config.channel.history_meta_ttl.0;
        let max = self.node.config.client.recovery_max_publication_limit;
        let broker = &self.node.broker;
        result.recoverable = spec.recoverable;
        result.positioned = spec.positioned;
        let position_only = HistoryFilter {
            limit: Some(0),
            ..Default::default()
        };
        let page = match spec.recover {
            Some((offset, epoch)) => {
                result.was_recovering = true;
                let since = chorus_protocol::frame::StreamPosition {
                    offset,
                    epoch: epoch.to_owned(),
                };
                let filter = HistoryFilter {
                    since: Some(since),
                    limit: Some(max + 1),
                    reverse: false,
                };
                match broker.history(spec.channel, &filter, meta_ttl).await {
                    Ok(page) if page.publications.len() <= max => {
                        result.recovered = true;
                        page
                    }
                    Ok(_) | Err(BrokerError::Unrecoverable) => broker
                        .history(spec.channel, &position_only, meta_ttl)
                        .await
                        .map_err(broker_error)?,
                    Err(e) => return Err(broker_error(e)),
                }
            }
            None => broker
                .history(spec.channel, &position_only, meta_ttl)
                .await
                .map_err(broker_error)?,
        };
        if result.was_recovering && !result.recovered && spec.reject_unrecovered {
            return Err(codes::ERROR_UNRECOVERABLE_POSITION.into());
        }
        result.epoch = page.position.epoch;
        result.offset = page.position.offset;
        result.publications = page.publications;
        Ok(result.offset)
    }

    /// Removes a subscription; returns whether there was one.
    async fn unsubscribe(&mut self, channel: &str) -> bool {
        let Some(i) = self.subs.iter().position(|s| &*s.channel == channel) else {
            return false;
        };
        let sub = self.subs.swap_remove(i);
        self.release(sub).await;
        true
    }

    async fn release(&self, sub: Sub) {
        self.node.hub.unsubscribe(&sub.channel, &self.handle);
        self.node.engine_release(&sub.channel).await;
        self.node.metrics.subscriptions.dec();
        if sub.presence {
            if let Err(e) = self
                .node
                .presence
                .remove(&sub.channel, &self.handle.id)
                .await
            {
                tracing::warn!(channel = %sub.channel, error = %e, "presence remove failed");
            }
        }
        if sub.join_leave {
            let info = self.client_info(sub.chan_info);
            if let Err(e) = self.node.broker.publish_leave(&sub.channel, &info).await {
                tracing::warn!(channel = %sub.channel, error = %e, "leave publish failed");
            }
        }
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
            .publish(&req.channel, data, Some(info), None, None, false)
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
        let claims = match self
            .node
            .subscribe_tokens
            .verify::<SubscribeClaims>(&req.token)
        {
            Ok(c) => c,
            Err(TokenError::Expired) => return Err(codes::ERROR_TOKEN_EXPIRED.into()),
            Err(TokenError::Invalid(_)) => return Err(codes::ERROR_PERMISSION_DENIED.into()),
        };
        if claims.channel != req.channel || claims.sub != self.handle.user() {
            return Err(codes::ERROR_PERMISSION_DENIED.into());
        }
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
        let push = encode_push(channel, "unsubscribe", &UnsubscribePush { code, reason });
        self.handle.send(Utf8Bytes::from(push));
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
                        let push = Utf8Bytes::from(encode_push(&channel, "subscribe", &result));
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

/// A server-side subscription: recovery as the client asked in `connect.subs`.
fn server_spec<'a>(
    channel: &'a str,
    opts: &ChannelOptions,
    wanted: Option<&'a SubscribeRequest>,
) -> SubscribeSpec<'a> {
    let recoverable = opts.force_recovery;
    SubscribeSpec {
        channel,
        recover: wanted
            .filter(|w| w.recover && recoverable)
            .map(|w| (w.offset, w.epoch.as_str())),
        recoverable,
        positioned: recoverable || opts.force_positioning,
        join_leave: opts.join_leave && opts.force_push_join_leave,
        reject_unrecovered: false,
        grant: SubscribeGrant::default(),
    }
}
