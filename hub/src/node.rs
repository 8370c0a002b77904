//! A hub node: the local [`Hub`], the [`Broker`] and [`PresenceManager`] engines, token
//! verification and the subscribe authorizer. Client sessions and the server API both act
//! through it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};
use std::time::Instant;

use chorus_protocol::channel::ChannelName;
use chorus_protocol::codes::{self, ProtocolError};
use chorus_protocol::frame::{ClientInfo, Data, JoinLeave, Publication, StreamPosition};
use tokio_util::sync::CancellationToken;

use crate::action::UserAction;
use crate::auth::{
    NamespacePermissions, SubscribeAuthorizer, SubscribeProxy, TokenError, TokenVerifier,
};
use crate::broker::{
    Broker, BrokerError, BrokerEventHandler, HistoryFilter, HistoryPage, MemoryBroker,
    PublishOptions, SourcePosition,
};
use crate::client::frame::{self, Shared};
use crate::cluster::{Channels, Cluster, Inbound, NodeInfo};
use crate::config::{ChannelOptions, Config};
use crate::hub::Hub;
use crate::metrics::{Metrics, Source};
use crate::presence::{MemoryPresence, PresenceManager};

/// What this node says it runs, in the connect reply and the server API's `info`.
pub const VERSION: &str = concat!("chorus ", env!("CARGO_PKG_VERSION"));

pub struct Node {
    pub config: Config,
    pub uid: String,
    pub name: String,
    pub hub: Arc<Hub>,
    pub broker: Arc<dyn Broker>,
    pub presence: Arc<dyn PresenceManager>,
    /// Connection tokens withdrawn before they expire (`invalidate_user_tokens`).
    pub revoked: Arc<dyn crate::revoked::Revoked>,
    pub authorizer: Arc<dyn SubscribeAuthorizer>,
    /// Every configured proxy (connect, refresh, channel, rpc, named).
    pub proxies: Arc<crate::proxy::Proxies>,
    pub connect_tokens: TokenVerifier,
    pub subscribe_tokens: TokenVerifier,
    pub metrics: Arc<Metrics>,
    /// Cancelled on shutdown: connections close with "shutdown, reconnect".
    pub shutdown: CancellationToken,
    /// Every WebSocket connection open on this node, connected or not: the open-connection
    /// count, and how shutdown reaches each one through its queue.
    pub roster: crate::client::roster::Roster,
    /// The most connections this node takes: `client.connection_limit` capped by open files.
    pub max_connections: usize,
    /// The Kafka consumers' health, for `/health`.
    pub consumers: crate::consumer::status::Registry,
    /// The other nodes (Redis engine).
    pub cluster: Cluster,
    /// This node's emulated (HTTP-streaming and SSE) sessions, for `/emulation` requests.
    pub emulated: crate::client::inbox::Inboxes,
    /// Compiled `channel_regex` by namespace ("" for channels without one).
    channel_regexes: std::collections::HashMap<String, regex::Regex>,
    /// Orders engine subscribe/unsubscribe per channel (striped), so a last subscriber
    /// leaving and a first one arriving cannot leave the node unsubscribed.
    engine_locks: Box<[tokio::sync::Mutex<()>]>,
    started: Instant,
}

const ENGINE_LOCKS: usize = 256;

/// What a node is built from; engines are swappable, defaults are the in-memory ones.
pub struct NodeParts {
    pub broker: Option<Arc<dyn Broker>>,
    pub presence: Option<Arc<dyn PresenceManager>>,
    /// Token invalidations; the memory engine's when `None`.
    pub revoked: Option<Arc<dyn crate::revoked::Revoked>>,
    pub authorizer: Option<Arc<dyn SubscribeAuthorizer>>,
    /// Cap from the open-files budget; `usize::MAX` when unknown.
    pub fd_connection_budget: usize,
}

impl Default for NodeParts {
    fn default() -> Self {
        NodeParts {
            broker: None,
            presence: None,
            revoked: None,
            authorizer: None,
            fd_connection_budget: usize::MAX,
        }
    }
}

/// Delivers broker events to the local hub, encoding each event once per protocol.
struct Delivery {
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    node: Weak<Node>,
}

impl BrokerEventHandler for Delivery {
    fn on_publication(
        &self,
        channel: &str,
        publication: &Arc<Publication>,
        prev: u64,
        epoch: &str,
        delta: bool,
    ) {
        let reached = Instant::now();
        self.metrics.publications_delivered.inc();
        let encode = |p| frame::push(p, channel, "pub", &**publication);
        // Whether subscribers with delta compression may get this one as a delta: the
        // publisher asked for it, or the namespace always does.
        let delta_publish = delta
            || self
                .node
                .upgrade()
                .is_some_and(|n| n.channel_options(channel).is_ok_and(|o| o.delta_publish));
        let frames = Shared::new(&encode).with_delta(channel, publication, delta_publish);
        let n = self
            .hub
            .broadcast(channel, publication.offset, prev, epoch, &frames, reached);
        self.metrics.sent_publication.inc_by(n as u64);
    }

    fn on_control(&self, data: &str) {
        if let Some(node) = self.node.upgrade() {
            node.on_control(data);
        }
    }

    fn on_resubscribed(&self) {
        if let Some(node) = self.node.upgrade() {
            tokio::spawn(async move { node.check_positions(true).await });
        }
    }

    fn on_join(&self, channel: &str, info: &ClientInfo) {
        let encode = |p| frame::push(p, channel, "join", &JoinLeave { info });
        let n = self
            .hub
            .broadcast_join_leave(channel, &Shared::new(&encode));
        self.metrics.sent_join_leave.inc_by(n as u64);
    }

    fn on_leave(&self, channel: &str, info: &ClientInfo) {
        let encode = |p| frame::push(p, channel, "leave", &JoinLeave { info });
        let n = self
            .hub
            .broadcast_join_leave(channel, &Shared::new(&encode));
        self.metrics.sent_join_leave.inc_by(n as u64);
    }
}

fn token_error(e: TokenError) -> anyhow::Error {
    anyhow::anyhow!("token key: {e}")
}

impl Node {
    pub fn new(config: Config, parts: NodeParts) -> anyhow::Result<Arc<Node>> {
        let t = &config.client.token;
        let connect_tokens = TokenVerifier::new(
            &t.hmac_secret_key,
            &t.rsa_public_key,
            &t.ecdsa_public_key,
            &t.audience,
            &t.issuer,
        )
        .map_err(token_error)?
        .with_leeway(config.client.token_leeway.0);
        let s = &config.client.subscription_token;
        let subscribe_tokens = if s.enabled {
            TokenVerifier::new(
                &s.hmac_secret_key,
                &s.rsa_public_key,
                &s.ecdsa_public_key,
                &s.audience,
                &s.issuer,
            )
            .map_err(token_error)?
            .with_leeway(config.client.token_leeway.0)
        } else {
            connect_tokens.clone()
        };
        let metrics = Arc::new(Metrics::new());
        let hub = Arc::new(Hub::timing_into(metrics.delivery_seconds.clone()));
        metrics.describe_process(if config.engine.is_redis() {
            "redis"
        } else {
            "memory"
        });
        let broker: Arc<dyn Broker> = match parts.broker {
            Some(b) => b,
            None => {
                let memory = Arc::new(MemoryBroker::default());
                spawn_purge(memory.clone());
                memory
            }
        };
        let configured = match config.client.connection_limit {
            0 => usize::MAX,
            n => n,
        };
        let proxies = Arc::new(crate::proxy::Proxies::new(&config)?);
        let subscribe_proxied = std::iter::once(&config.channel.without_namespace)
            .chain(config.channel.namespaces.iter().map(|n| &n.options))
            .any(|o| o.subscribe_proxy_enabled);
        let authorizer: Arc<dyn SubscribeAuthorizer> = match parts.authorizer {
            Some(a) => a,
            None if subscribe_proxied => SubscribeProxy::new(proxies.clone()),
            None => Arc::new(NamespacePermissions),
        };
        let mut channel_regexes = std::collections::HashMap::new();
        let namespaces = std::iter::once(("", &config.channel.without_namespace)).chain(
            config
                .channel
                .namespaces
                .iter()
                .map(|n| (n.name.as_str(), &n.options)),
        );
        for (name, o) in namespaces.filter(|(_, o)| !o.channel_regex.is_empty()) {
            channel_regexes.insert(name.to_owned(), regex::Regex::new(&o.channel_regex)?);
        }
        let uid = uuid::Uuid::new_v4().to_string();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "chorus".into());
        let node = Arc::new(Node {
            cluster: Cluster::new(uid.clone(), broker.clone(), config.engine.is_redis()),
            name: format!("{host}_{}", config.http_server.port),
            max_connections: configured.min(parts.fd_connection_budget),
            config,
            uid,
            hub,
            broker,
            presence: parts
                .presence
                .unwrap_or_else(|| Arc::new(MemoryPresence::default())),
            revoked: parts
                .revoked
                .unwrap_or_else(|| Arc::new(crate::revoked::MemoryRevoked::default())),
            authorizer,
            proxies,
            channel_regexes,
            connect_tokens,
            subscribe_tokens,
            metrics,
            shutdown: CancellationToken::new(),
            roster: Default::default(),
            consumers: Default::default(),
            emulated: Default::default(),
            engine_locks: (0..ENGINE_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            started: Instant::now(),
        });
        node.broker.run(Arc::new(Delivery {
            hub: node.hub.clone(),
            metrics: node.metrics.clone(),
            node: Arc::downgrade(&node),
        }));
        node.spawn_position_checks();
        Ok(node)
    }

    /// Every `client.channel_position_check_delay`, checks positioned subscribers against
    /// their streams (`Hub::check_position`), as Centrifugo does; until the node is dropped or shut
    /// down.
    fn spawn_position_checks(self: &Arc<Self>) {
        let every = self.config.client.channel_position_check_delay.0;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if every.is_zero() {
            return;
        }
        let node = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(node) = node.upgrade() else { return };
                if node.shutdown.is_cancelled() {
                    return;
                }
                node.check_positions(false).await;
            }
        });
    }

    /// Joins the cluster (Redis engine): control messages, heartbeats.
    pub async fn start_engine(self: &Arc<Self>) -> anyhow::Result<()> {
        self.broker
            .listen_control(&self.uid)
            .await
            .map_err(|e| anyhow::anyhow!("engine control channel: {e}"))?;
        self.spawn_heartbeat();
        Ok(())
    }

    /// Announces this node every [`crate::cluster::HEARTBEAT`] until shutdown.
    fn spawn_heartbeat(self: &Arc<Self>) {
        if !self.cluster.enabled() {
            return;
        }
        let node = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::cluster::HEARTBEAT);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        node.cluster
                            .send(crate::cluster::Command::Node(node.info()), None)
                            .await;
                    }
                    _ = node.shutdown.cancelled() => return,
                }
            }
        });
    }

    /// A user action from the server API: applied to this node's connections, then sent to
    /// every other node, which applies it to its own.
    pub async fn act(&self, action: UserAction) {
        action.apply(&self.hub);
        self.cluster
            .send(crate::cluster::Command::Action(action), None)
            .await;
    }

    /// What another node asks of this one, as its control message says.
    fn on_control(self: Arc<Self>, data: &str) {
        match self.cluster.receive(data) {
            None => {}
            Some(Inbound::Action(action)) => {
                action.apply(&self.hub);
            }
            Some(Inbound::Emulation { session, data }) => {
                let delivered = self.emulated.deliver_now(&session, data);
                if !delivered {
                    tracing::debug!(%session, "emulation request for a session that has ended");
                }
            }
            Some(Inbound::Survey { id, pattern, from }) => {
                tokio::spawn(async move {
                    let channels = self.local_channels(&pattern);
                    self.cluster.answer_survey(id, channels, &from).await;
                });
            }
        }
    }

    /// Hands an `/emulation` request's commands to the session it names: here, or on the
    /// node it names through the control channel (the node that received the request need
    /// not be the one holding the client's stream). `false`: no such session here and no
    /// such node in the cluster.
    pub async fn emulate(&self, node: &str, session: &str, data: bytes::Bytes) -> bool {
        if self.emulated.deliver(session, data.clone()).await {
            return true;
        }
        if node == self.uid || !self.cluster.knows(node) {
            return false;
        }
        self.cluster.emulate(node, session, &data).await;
        true
    }

    /// This node's channels matching a `channels` pattern, with their subscriber counts.
    pub fn local_channels(&self, pattern: &str) -> Channels {
        self.hub
            .channels()
            .into_iter()
            .filter(|(name, _)| pattern.is_empty() || crate::glob::glob_match(pattern, name))
            .map(|(name, n)| (name.to_string(), n))
            .collect()
    }

    /// Every node's channels matching `pattern`, subscriber counts summed.
    pub async fn channels(&self, pattern: &str) -> Channels {
        self.cluster
            .survey(pattern, self.local_channels(pattern))
            .await
    }

    fn engine_lock(&self, channel: &str) -> &tokio::sync::Mutex<()> {
        let mut h = DefaultHasher::new();
        channel.hash(&mut h);
        &self.engine_locks[(h.finish() as usize) % ENGINE_LOCKS]
    }

    /// Makes sure the engine delivers `channel` to this node; called for every new
    /// subscriber, before its position is read.
    pub async fn engine_subscribe(&self, channel: &str) -> Result<(), ProtocolError> {
        let _order = self.engine_lock(channel).lock().await;
        self.broker.subscribe(channel).await.map_err(broker_error)
    }

    /// Stops the engine delivering `channel` here once its last local subscriber left.
    pub async fn engine_release(&self, channel: &str) {
        let _order = self.engine_lock(channel).lock().await;
        if self.hub.num_subscribers(channel) > 0 {
            return;
        }
        if let Err(e) = self.broker.unsubscribe(channel).await {
            tracing::warn!(%channel, error = %e, "engine unsubscribe failed");
        }
    }

    /// Makes positioned subscribers that missed a publication recover: all that are behind
    /// right after the engine's PUB/SUB link was broken (`at_once`), or, on the periodic
    /// check, those behind twice in a row (`Hub::check_position`).
    pub async fn check_positions(&self, at_once: bool) {
        let position_only = HistoryFilter {
            limit: Some(0),
            ..Default::default()
        };
        let mut resynced = 0;
        for channel in self.hub.positioned_channels() {
            let meta_ttl = match self.channel_options(&channel) {
                Ok(opts) => self.history_meta_ttl(opts),
                Err(_) => self.config.channel.history_meta_ttl.0,
            };
            match self
                .broker
                .history(&channel, &position_only, meta_ttl)
                .await
            {
                Ok(page) => {
                    let (top, epoch) = (page.position.offset, &page.position.epoch);
                    resynced += self.hub.check_position(&channel, top, epoch, at_once)
                }
                Err(e) => tracing::warn!(%channel, error = %e, "position check failed"),
            }
        }
        if resynced > 0 {
            tracing::info!(
                resynced,
                "subscribers that missed publications told to recover"
            );
        }
    }

    /// This node's numbers for the server API's `info`.
    pub fn info(&self) -> NodeInfo {
        let channels = self.hub.channels();
        NodeInfo {
            uid: self.uid.clone(),
            name: self.name.clone(),
            version: VERSION.into(),
            num_clients: self.hub.num_clients(),
            num_users: self.hub.num_users(),
            num_subs: channels.iter().map(|(_, n)| n).sum(),
            num_channels: channels.len(),
            uptime: self.uptime_secs(),
            kafka_groups: self
                .config
                .consumers
                .iter()
                .filter(|c| c.enabled && c.kind == "kafka")
                .map(|c| c.kafka.consumer_group.clone())
                .collect(),
        }
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub fn open_connections(&self) -> usize {
        self.roster.len()
    }

    /// Takes a new connection of any transport, or refuses it at the connection limit (the
    /// caller closes it with 3504). The roster is the open-connection count: the slot is held
    /// however the connection's task ends.
    pub fn admit(
        &self,
        handle: &Arc<crate::client::ClientHandle>,
    ) -> Option<crate::client::roster::Admitted<'_>> {
        let Some(enrolled) = self.roster.enroll(handle, self.max_connections) else {
            self.metrics.connections_refused.inc();
            return None;
        };
        // Enrolled first, checked second: a shutdown cannot slip between the two.
        if self.shutdown.is_cancelled() {
            handle.disconnect(codes::DISCONNECT_SHUTDOWN);
        }
        Some(crate::client::roster::Admitted::new(
            enrolled,
            &self.metrics.connections,
        ))
    }

    /// The options governing a channel, or the error a client or API caller should get.
    pub fn channel_options(&self, channel: &str) -> Result<&ChannelOptions, ProtocolError> {
        if channel.is_empty() {
            return Err(codes::ERROR_BAD_REQUEST.into());
        }
        if channel.len() > self.config.channel.max_length {
            return Err(codes::ERROR_LIMIT_EXCEEDED.into());
        }
        self.config
            .channel_options(ChannelName::parse(channel).namespace)
            .ok_or_else(|| codes::ERROR_UNKNOWN_CHANNEL.into())
    }

    /// The options of a channel a client names (subscribe, publish, presence, history): also
    /// checks the namespace's `channel_regex` against the name after the namespace, as
    /// Centrifugo does for client commands only.
    pub fn client_channel_options(&self, channel: &str) -> Result<&ChannelOptions, ProtocolError> {
        let opts = self.channel_options(channel)?;
        let name = ChannelName::parse(channel);
        if let Some(re) = self.channel_regexes.get(name.namespace) {
            let body = channel.strip_prefix('$').unwrap_or(channel);
            let rest = if name.namespace.is_empty() {
                body
            } else {
                &body[name.namespace.len() + 1..]
            };
            if !re.is_match(rest) {
                return Err(codes::ERROR_BAD_REQUEST.into());
            }
        }
        Ok(opts)
    }

    /// How long an idle stream keeps its position: the namespace's, else the channel-wide.
    pub fn history_meta_ttl(&self, opts: &ChannelOptions) -> std::time::Duration {
        if opts.history_meta_ttl.is_zero() {
            self.config.channel.history_meta_ttl.0
        } else {
            opts.history_meta_ttl.0
        }
    }

    /// How a publication into `channel` is stored: its namespace's history settings, or the
    /// error a publisher should get for the channel.
    fn publish_options(
        &self,
        channel: &str,
        idempotency_key: Option<String>,
        skip_history: bool,
    ) -> Result<PublishOptions, ProtocolError> {
        let opts = self.channel_options(channel)?;
        Ok(PublishOptions {
            history_size: if skip_history { 0 } else { opts.history_size },
            history_ttl: opts.history_ttl.0,
            history_meta_ttl: self.history_meta_ttl(opts),
            idempotency_key: idempotency_key.filter(|k| !k.is_empty()),
            source: None,
            delta: false,
        })
    }

    /// Publishes into a channel: the path for both client and server API publications.
    #[allow(clippy::too_many_arguments)]
    pub async fn publish(
        &self,
        source: Source,
        channel: &str,
        data: Data,
        info: Option<ClientInfo>,
        tags: Option<std::collections::BTreeMap<String, String>>,
        idempotency_key: Option<String>,
        skip_history: bool,
        delta: bool,
    ) -> Result<StreamPosition, ProtocolError> {
        let publish = PublishOptions {
            delta,
            ..self.publish_options(channel, idempotency_key, skip_history)?
        };
        self.publish_timed(source, channel, data, info, tags, &publish)
            .await
    }

    /// The engine's publish, counted by source and timed.
    async fn publish_timed(
        &self,
        source: Source,
        channel: &str,
        data: Data,
        info: Option<ClientInfo>,
        tags: Option<std::collections::BTreeMap<String, String>>,
        publish: &PublishOptions,
    ) -> Result<StreamPosition, ProtocolError> {
        let started = Instant::now();
        let result = self
            .broker
            .publish(channel, data, info, tags, publish)
            .await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .broker_publish_seconds
            .with_label_values(&[outcome])
            .observe(started.elapsed().as_secs_f64());
        if result.is_ok() {
            self.metrics.published(source);
        }
        result.map_err(broker_error)
    }

    /// Publishes a consumed record; `source` positions chat-event streams (see
    /// [`SourcePosition`]).
    pub async fn publish_record(
        &self,
        channel: &str,
        data: Data,
        tags: Option<std::collections::BTreeMap<String, String>>,
        idempotency_key: Option<String>,
        skip_history: bool,
        source: Option<SourcePosition>,
    ) -> Result<StreamPosition, ProtocolError> {
        let publish = PublishOptions {
            source,
            ..self.publish_options(channel, idempotency_key, skip_history)?
        };
        self.publish_timed(Source::Kafka, channel, data, None, tags, &publish)
            .await
    }

    pub async fn history(
        &self,
        channel: &str,
        filter: &HistoryFilter,
    ) -> Result<HistoryPage, ProtocolError> {
        let opts = self.channel_options(channel)?;
        if !opts.history_enabled() {
            return Err(codes::ERROR_NOT_AVAILABLE.into());
        }
        self.broker
            .history(channel, filter, self.history_meta_ttl(opts))
            .await
            .map_err(broker_error)
    }
}

pub fn broker_error(e: BrokerError) -> ProtocolError {
    match e {
        BrokerError::Unrecoverable => codes::ERROR_UNRECOVERABLE_POSITION.into(),
        BrokerError::SourceOnly => codes::ERROR_NOT_AVAILABLE.into(),
        BrokerError::Unavailable(m) => {
            tracing::warn!(error = %m, "broker unavailable");
            codes::ERROR_INTERNAL.into()
        }
    }
}

fn spawn_purge(broker: Arc<MemoryBroker>) {
    // Only when a runtime exists (tests may build a node outside one).
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        let weak = Arc::downgrade(&broker);
        rt.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(b) => b.purge_idle(),
                    None => return,
                }
            }
        });
    }
}
