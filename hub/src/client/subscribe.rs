//! The subscribe pipeline of a session: authorize (subscription token, private and
//! user-limited channels, then the authorizer: namespace permissions or the subscribe proxy),
//! add the subscription held back, position it and recover what the client missed, join
//! presence; and its reverse, release. Client subscribes, server-side subscriptions from the
//! connection token and server API subscribes all come through here.
//!
//! A subscription is set up with its channel "held back": live publications that race the
//! subscribe reply are buffered and released after it, minus any the reply already carried
//! (by offset), so a client never sees a gap or a duplicate. Whether a recovering client is
//! `recovered` is [`crate::recovery::decide`]'s.

use std::sync::Arc;

use chorus_protocol::channel::ChannelName;
use chorus_protocol::codes::{self, ProtocolError};
use chorus_protocol::filter::FilterNode;
use chorus_protocol::frame::{
    SubscribeRequest, SubscribeResult, SUBSCRIBE_FLAG_REJECT_UNRECOVERED,
};

use super::session::{ttl, Session, Sub};
use crate::auth::{SubscribeClaims, SubscribeContext, SubscribeGrant, TokenError};
use crate::broker::{BrokerError, HistoryFilter};
use crate::config::ChannelOptions;
use crate::node::broker_error;
use crate::recovery::{self, Recovery};

/// Where a new subscriber stands once its reply is built: the stream's top offset, and its
/// epoch when the subscription is positioned.
#[derive(Default)]
pub(super) struct SyncPoint {
    pub(super) top: u64,
    pub(super) epoch: Option<String>,
}

impl SyncPoint {
    pub(super) fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }
}

/// How a subscribe is asked for: by the client, or by the server (token, API).
pub(super) struct SubscribeSpec<'a> {
    channel: &'a str,
    recover: Option<(u64, &'a str)>,
    recoverable: bool,
    positioned: bool,
    join_leave: bool,
    reject_unrecovered: bool,
    /// Delta compression negotiated (fossil).
    delta: bool,
    /// The publication tags filter asked for (`tf`).
    filter: Option<Arc<FilterNode>>,
    grant: SubscribeGrant,
}

impl Session {
    pub(super) async fn subscribe(
        &mut self,
        id: u32,
        req: SubscribeRequest,
    ) -> Result<(), ProtocolError> {
        let opts = self.node.client_channel_options(&req.channel)?.clone();
        if self.subscribed(&req.channel) {
            return Err(codes::ERROR_ALREADY_SUBSCRIBED.into());
        }
        let delta = match req.delta.as_str() {
            "" => false,
            t if opts.allowed_delta_types.iter().any(|a| a == t) => true,
            // Centrifugo's answer to a delta type the namespace does not allow.
            _ => return Err(codes::ERROR_BAD_REQUEST.into()),
        };
        let filter = match &req.tf {
            None => None,
            // Centrifugo's answers: the namespace does not allow filters, the tree is
            // malformed, or it is asked for with delta compression (they exclude each other:
            // a delta needs the previous publication, which a filter may have skipped).
            Some(_) if !opts.allow_tags_filter || delta => {
                return Err(codes::ERROR_BAD_REQUEST.into())
            }
            Some(f) => match f.validate() {
                Ok(()) => Some(Arc::new(f.clone())),
                Err(why) => {
                    tracing::info!(client = %self.handle.id, channel = %req.channel, %why, "invalid tags filter");
                    return Err(codes::ERROR_BAD_REQUEST.into());
                }
            },
        };
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
            delta,
            filter,
            grant,
        };
        let (result, point) = self.setup_subscription(&opts, spec).await?;
        let reply = super::frame::reply(self.handle.protocol, id, "subscribe", &result);
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
            let claims = self.subscription_claims(&req.token, &req.channel)?;
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
            transport: self.transport,
            protocol: self.handle.protocol,
            user,
            channel: &req.channel,
            data: req.data.as_deref(),
            options: opts,
            headers: self.headers.as_deref(),
        };
        self.node.authorizer.authorize(&ctx).await
    }

    /// A subscription token's claims, when it verifies and names this channel and this
    /// client's user (on subscribe and on `sub_refresh` alike).
    pub(super) fn subscription_claims(
        &self,
        token: &str,
        channel: &str,
    ) -> Result<SubscribeClaims, ProtocolError> {
        let claims = match self.node.subscribe_tokens.verify::<SubscribeClaims>(token) {
            Ok(c) => c,
            Err(TokenError::Expired) => return Err(codes::ERROR_TOKEN_EXPIRED.into()),
            Err(TokenError::Invalid(reason)) => {
                tracing::info!(client = %self.handle.id, %channel, %reason, "invalid subscription token");
                return Err(codes::ERROR_PERMISSION_DENIED.into());
            }
        };
        if claims.channel != channel || claims.sub != self.handle.user() {
            return Err(codes::ERROR_PERMISSION_DENIED.into());
        }
        Ok(claims)
    }

    /// Adds the subscription (held back) and builds its result; the caller queues the reply
    /// and then calls `finish_sync` with the returned sync point.
    pub(super) async fn setup_subscription(
        &mut self,
        opts: &ChannelOptions,
        spec: SubscribeSpec<'_>,
    ) -> Result<(SubscribeResult, SyncPoint), ProtocolError> {
        if self.subs.len() >= self.node.config.client.channel_limit {
            return Err(codes::ERROR_LIMIT_EXCEEDED.into());
        }
        let channel: Arc<str> = spec.channel.into();
        self.node.hub.subscribe(
            &channel,
            &self.handle,
            spec.join_leave,
            true,
            spec.delta,
            spec.filter.clone(),
        );
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
        if let Some(f) = &spec.filter {
            // Recovered publications pass the filter as live ones do; the reply's offset is
            // the stream's, so the client's position moves past the skipped ones too.
            result.publications.retain(|p| f.matches(p.tags.as_ref()));
        }
        // With the sub_refresh proxy the server extends the subscription; the client is not
        // told it expires.
        if spec.delta {
            result.delta = true;
            if self.handle.protocol == chorus_protocol::Protocol::Json {
                // A JSON subscriber with delta reads every publication's data as a string
                // (the document, or a delta); recovered ones are documents.
                result.publications = result
                    .publications
                    .iter()
                    .map(|p| Arc::new(super::frame::as_string_data(p, p.data.get(), false)))
                    .collect();
            }
        }
        let proxy_refreshed = opts.sub_refresh_proxy_enabled && spec.grant.expire_at.is_some();
        if !proxy_refreshed {
            (result.expires, result.ttl) = ttl(spec.grant.expire_at);
        }
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
            proxy_refreshed,
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
        let meta_ttl = match self.node.channel_options(spec.channel) {
            Ok(opts) => self.node.history_meta_ttl(opts),
            Err(_) => self.node.config.channel.history_meta_ttl.0,
        };
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
                let missed = match broker.history(spec.channel, &filter, meta_ttl).await {
                    Ok(page) => Some(page),
                    Err(BrokerError::Unrecoverable) => None,
                    Err(e) => return Err(broker_error(e)),
                };
                let count = missed.as_ref().map_or(0, |p| p.publications.len());
                match (
                    recovery::decide(missed.is_some(), count, max, spec.reject_unrecovered),
                    missed,
                ) {
                    (Recovery::Recovered, Some(page)) => {
                        result.recovered = true;
                        page
                    }
                    (Recovery::Refused, _) => {
                        return Err(codes::ERROR_UNRECOVERABLE_POSITION.into())
                    }
                    _ => broker
                        .history(spec.channel, &position_only, meta_ttl)
                        .await
                        .map_err(broker_error)?,
                }
            }
            None => broker
                .history(spec.channel, &position_only, meta_ttl)
                .await
                .map_err(broker_error)?,
        };
        result.epoch = page.position.epoch;
        result.offset = page.position.offset;
        result.publications = page.publications;
        Ok(result.offset)
    }

    /// Removes a subscription; returns whether there was one.
    pub(super) async fn unsubscribe(&mut self, channel: &str) -> bool {
        let Some(i) = self.subs.iter().position(|s| &*s.channel == channel) else {
            return false;
        };
        let sub = self.subs.swap_remove(i);
        self.release(sub).await;
        true
    }

    pub(super) async fn release(&self, sub: Sub) {
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
}

impl Session {
    /// Sets up a server-side subscription (a connection token's channels, the server API's
    /// subscribe) as [`Session::setup_subscription`] does: recovery as the client asked in
    /// `connect.subs` (`wanted`), where the namespace allows it.
    pub(super) async fn setup_server_subscription(
        &mut self,
        opts: &ChannelOptions,
        channel: &str,
        wanted: Option<&SubscribeRequest>,
    ) -> Result<(SubscribeResult, SyncPoint), ProtocolError> {
        self.setup_subscription(opts, server_spec(channel, opts, wanted))
            .await
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
        delta: false,
        filter: None,
        grant: SubscribeGrant::default(),
    }
}
