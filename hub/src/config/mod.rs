//! The hub's configuration: Centrifugo v6 key names, so an existing Centrifugo config file works.
//!
//! - [`load`]: reads JSON, YAML or TOML, applies environment overrides, reports unknown keys.
//! - [`validate`]: checks the values before any port is bound.
//! - [`duration`]: Centrifugo-style durations (`"25s"`, `"1m30s"`, `"500ms"`).
//! - [`consumers`]: the `consumers` array (Kafka topics the hub delivers from).

pub mod consumers;
pub mod duration;
pub mod load;
pub mod redis;
pub mod validate;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use duration::HumanDuration;
pub use load::{load_file, load_str, ConfigError, Format, Loaded};
pub use redis::{Redis, Topology};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub http_server: HttpServer,
    pub log: Log,
    pub engine: Engine,
    pub client: Client,
    pub channel: Channel,
    pub http_api: HttpApi,
    pub websocket: WebSocket,
    /// Centrifugo's unidirectional transports, each off by default.
    pub uni_websocket: UniWebSocket,
    pub uni_sse: StreamTransport,
    pub uni_http_stream: StreamTransport,
    /// Centrifugo's bidirectional emulation: `/connection/sse` and `/connection/http_stream`
    /// for the server's frames, `/emulation` for the client's commands (served when either
    /// is enabled). Each off by default.
    pub sse: StreamTransport,
    pub http_stream: StreamTransport,
    pub emulation: Emulation,
    pub health: Toggle,
    pub prometheus: Toggle,
    pub shutdown: Shutdown,
    pub consumers: Vec<consumers::Consumer>,
    /// Client `rpc` calls, routed to a proxy by method namespace.
    pub rpc: Rpc,
    /// Named proxies that namespaces refer to by `*_proxy_name`.
    pub proxies: Vec<NamedProxy>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpServer {
    pub address: String,
    pub port: u16,
    /// Centrifugo's `internal_port`: when set, the server API, `/health` and `/metrics` are
    /// served there and not on `port`, which then carries client connections only.
    pub internal_port: u16,
    /// The address of `internal_port`; empty: `address`.
    pub internal_address: String,
}

impl Default for HttpServer {
    fn default() -> Self {
        HttpServer {
            address: String::new(),
            port: 8000,
            internal_port: 0,
            internal_address: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Log {
    /// none, trace, debug, info, warn, error.
    pub level: String,
    /// `text` (human) or `json` (production). A Chorus extension.
    pub format: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Engine {
    /// `memory` (one node, the default) or `redis` (any number of nodes sharing one Redis).
    #[serde(rename = "type")]
    pub kind: String,
    pub redis: Redis,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            kind: "memory".into(),
            redis: Redis::default(),
        }
    }
}

impl Engine {
    pub fn is_redis(&self) -> bool {
        self.kind == "redis"
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Token {
    pub hmac_secret_key: String,
    pub rsa_public_key: String,
    pub ecdsa_public_key: String,
    pub audience: String,
    pub issuer: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscriptionToken {
    /// When false, subscription tokens are checked with `client.token`.
    pub enabled: bool,
    pub hmac_secret_key: String,
    pub rsa_public_key: String,
    pub ecdsa_public_key: String,
    pub audience: String,
    pub issuer: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Client {
    pub token: Token,
    pub subscription_token: SubscriptionToken,
    pub allowed_origins: Vec<String>,
    pub allow_anonymous_connect_without_token: bool,
    pub disallow_anonymous_connection_tokens: bool,
    /// Development only: accept any connection and subscription.
    pub insecure: bool,
    pub ping_interval: HumanDuration,
    pub pong_timeout: HumanDuration,
    pub expired_close_delay: HumanDuration,
    pub expired_sub_close_delay: HumanDuration,
    pub stale_close_delay: HumanDuration,
    pub channel_limit: usize,
    /// Bytes queued for one connection before it is disconnected as slow.
    pub queue_max_size: usize,
    /// Centrifugo PRO's `client.write_delay`: how long a connection collects messages
    /// before each write, trading latency for fewer writes. Zero (the default) writes at
    /// once, and lets the fan-out write publications to WebSocket sockets itself.
    pub write_delay: HumanDuration,
    /// Centrifugo PRO's `client.max_messages_in_frame`: the most messages one WebSocket
    /// frame carries; -1 for no limit. Frames past the first leave in the same write.
    pub max_messages_in_frame: i64,
    /// Connections this node accepts; 0 means only the open-files limit applies.
    pub connection_limit: usize,
    pub user_connection_limit: usize,
    pub history_max_publication_limit: usize,
    pub recovery_max_publication_limit: usize,
    /// How often a node re-announces its clients' presence (the Redis engine expires
    /// entries not refreshed within `engine.redis.presence_ttl`).
    pub presence_update_interval: HumanDuration,
    /// Clock skew forgiven on `exp` and `nbf` of every token. A Chorus extension.
    pub token_leeway: HumanDuration,
    /// The connect and refresh proxies.
    pub proxy: ClientProxy,
    /// How often positioned subscriptions are checked against their stream's top, so a lost
    /// last publication ends in a recovery too; zero turns the check off.
    pub channel_position_check_delay: HumanDuration,
}

/// Centrifugo v6 `client.proxy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientProxy {
    /// Authenticates a connection that brings no token.
    pub connect: ToggledProxy,
    /// Extends (or ends) an expiring connection on the server side; the client is then not
    /// asked to refresh.
    pub refresh: ToggledProxy,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ToggledProxy {
    pub enabled: bool,
    #[serde(flatten)]
    pub proxy: ProxyEndpoint,
}

/// Centrifugo v6 `proxies[]`: a proxy namespaces name in `*_proxy_name`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedProxy {
    pub name: String,
    #[serde(flatten)]
    pub proxy: ProxyEndpoint,
}

/// Centrifugo v6 `rpc`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Rpc {
    /// The proxy `proxy_name: "default"` means.
    pub proxy: ProxyEndpoint,
    pub without_namespace: RpcOptions,
    pub namespaces: Vec<RpcNamespace>,
    /// Splits a method into namespace and name: `billing:charge`.
    pub namespace_boundary: String,
}

impl Default for Rpc {
    fn default() -> Self {
        Rpc {
            proxy: ProxyEndpoint::default(),
            without_namespace: RpcOptions::default(),
            namespaces: Vec::new(),
            namespace_boundary: ":".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcOptions {
    pub proxy_enabled: bool,
    pub proxy_name: String,
}

impl Default for RpcOptions {
    fn default() -> Self {
        RpcOptions {
            proxy_enabled: false,
            proxy_name: DEFAULT_PROXY.into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcNamespace {
    pub name: String,
    #[serde(flatten)]
    pub options: RpcOptions,
}

/// The name that means "the kind's own proxy" (`channel.proxy.publish`, `rpc.proxy`, ...).
pub const DEFAULT_PROXY: &str = "default";

impl Default for Client {
    fn default() -> Self {
        Client {
            token: Token::default(),
            subscription_token: SubscriptionToken::default(),
            allowed_origins: Vec::new(),
            allow_anonymous_connect_without_token: false,
            disallow_anonymous_connection_tokens: false,
            insecure: false,
            ping_interval: HumanDuration::secs(25),
            pong_timeout: HumanDuration::secs(8),
            expired_close_delay: HumanDuration::secs(25),
            expired_sub_close_delay: HumanDuration::secs(25),
            stale_close_delay: HumanDuration::secs(10),
            channel_limit: 128,
            queue_max_size: 1_048_576,
            write_delay: HumanDuration(Duration::ZERO),
            max_messages_in_frame: 16,
            connection_limit: 0,
            user_connection_limit: 0,
            history_max_publication_limit: 300,
            recovery_max_publication_limit: 300,
            presence_update_interval: HumanDuration::secs(27),
            proxy: ClientProxy::default(),
            channel_position_check_delay: HumanDuration::secs(40),
            token_leeway: HumanDuration::secs(5),
        }
    }
}

/// Options of one namespace, or of channels without a namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelOptions {
    pub presence: bool,
    pub join_leave: bool,
    pub force_push_join_leave: bool,
    pub history_size: usize,
    pub history_ttl: HumanDuration,
    pub force_recovery: bool,
    pub allow_recovery: bool,
    pub force_positioning: bool,
    pub allow_positioning: bool,
    pub allow_subscribe_for_client: bool,
    pub allow_subscribe_for_anonymous: bool,
    pub allow_publish_for_subscriber: bool,
    pub allow_publish_for_client: bool,
    pub allow_publish_for_anonymous: bool,
    pub allow_presence_for_subscriber: bool,
    pub allow_presence_for_client: bool,
    pub allow_presence_for_anonymous: bool,
    pub allow_history_for_subscriber: bool,
    pub allow_history_for_client: bool,
    pub allow_history_for_anonymous: bool,
    pub allow_user_limited_channels: bool,
    /// Ask `channel.proxy.subscribe` (the backend) whether a client may subscribe, instead of
    /// the `allow_subscribe_*` options. A subscription token still wins.
    pub subscribe_proxy_enabled: bool,
    /// Ask the publish proxy whether a client publication goes out (and in what form),
    /// instead of the `allow_publish_*` options.
    pub publish_proxy_enabled: bool,
    /// Ask the sub_refresh proxy to extend an expiring subscription.
    pub sub_refresh_proxy_enabled: bool,
    /// A client may only use channels whose name after the namespace matches this regex
    /// (subscribe, publish, presence, history); others get 107. Empty: any name.
    pub channel_regex: String,
    /// How long an idle stream of this namespace keeps its epoch and top offset; zero: the
    /// `channel.history_meta_ttl`.
    pub history_meta_ttl: HumanDuration,
    /// Delta encodings a subscriber may ask for: `["fossil"]` or none.
    pub allowed_delta_types: Vec<String>,
    /// A subscriber may ask for only the publications whose tags pass a filter (`tf`).
    pub allow_tags_filter: bool,
    /// Publications go to subscribers that negotiated a delta as deltas against the
    /// previous publication of the channel.
    pub delta_publish: bool,
    /// Which proxy: `default` is `channel.proxy.<kind>`, anything else a `proxies[]` name.
    pub subscribe_proxy_name: String,
    pub publish_proxy_name: String,
    pub sub_refresh_proxy_name: String,
}

impl ChannelOptions {
    pub fn history_enabled(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Namespace {
    pub name: String,
    #[serde(flatten)]
    pub options: ChannelOptions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Channel {
    pub without_namespace: ChannelOptions,
    pub namespaces: Vec<Namespace>,
    /// Centrifugo v6 `channel.proxy`: where channel events are proxied to the backend.
    pub proxy: ChannelProxy,
    pub max_length: usize,
    /// How long an idle stream keeps its epoch and top offset.
    pub history_meta_ttl: HumanDuration,
}

impl Default for Channel {
    fn default() -> Self {
        Channel {
            without_namespace: ChannelOptions::default(),
            namespaces: Vec::new(),
            proxy: ChannelProxy::default(),
            max_length: 255,
            history_meta_ttl: HumanDuration::secs(30 * 24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelProxy {
    pub subscribe: ProxyEndpoint,
    pub publish: ProxyEndpoint,
    pub sub_refresh: ProxyEndpoint,
}

/// One HTTP proxy hook: Centrifugo's `endpoint`, `timeout` and `static_http_headers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyEndpoint {
    /// `http://` URL the hub POSTs the event to; empty means not configured.
    pub endpoint: String,
    /// Past this the call counts as failed and the client gets a temporary error.
    pub timeout: HumanDuration,
    /// Sent with every call, e.g. a key the backend checks (the name Centrifugo v5 used).
    pub static_http_headers: std::collections::BTreeMap<String, String>,
    /// Centrifugo v6's place for the same: `http.static_headers`.
    pub http: ProxyHttp,
    /// Headers of the client's own HTTP request (the WebSocket upgrade, the stream request)
    /// copied onto every call: `Cookie` lets a backend authenticate a browser by its session.
    pub http_headers: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxyHttp {
    pub static_headers: std::collections::BTreeMap<String, String>,
}

impl Default for ProxyEndpoint {
    fn default() -> Self {
        ProxyEndpoint {
            endpoint: String::new(),
            timeout: HumanDuration::secs(1),
            static_http_headers: Default::default(),
            http: ProxyHttp::default(),
            http_headers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpApi {
    pub key: String,
    pub insecure: bool,
    /// Also take the key from `?api_key=`; off, since URLs land in access logs. A Chorus
    /// extension.
    pub allow_key_in_query: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebSocket {
    /// Largest message a client may send, in bytes; past it the connection closes with 1009.
    pub message_size_limit: usize,
    /// Bytes reserved to read a connection; small keeps idle connections cheap.
    pub read_buffer_size: usize,
    pub write_timeout: HumanDuration,
}

impl Default for WebSocket {
    fn default() -> Self {
        WebSocket {
            message_size_limit: 65_536,
            read_buffer_size: 512,
            write_timeout: HumanDuration::secs(1),
        }
    }
}

/// `uni_websocket`: the connect request as the first message, pushes back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UniWebSocket {
    pub enabled: bool,
    /// Largest message a client may send (its connect request), in bytes.
    pub message_size_limit: usize,
}

impl Default for UniWebSocket {
    fn default() -> Self {
        UniWebSocket {
            enabled: false,
            message_size_limit: 65_536,
        }
    }
}

/// `uni_sse`, `uni_http_stream`, `sse` and `http_stream`: the connect request in the body
/// (or, for a GET, in `cf_connect`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamTransport {
    pub enabled: bool,
    pub max_request_body_size: usize,
}

impl Default for StreamTransport {
    fn default() -> Self {
        StreamTransport {
            enabled: false,
            max_request_body_size: 65_536,
        }
    }
}

/// `emulation`: the endpoint taking emulated clients' commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Emulation {
    /// Largest `/emulation` body; over it → 413.
    pub max_request_body_size: usize,
}

impl Default for Emulation {
    fn default() -> Self {
        Emulation {
            max_request_body_size: 65_536,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Toggle {
    pub enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        // Chorus serves /health and /metrics unless told not to: operators always want them.
        Toggle { enabled: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Shutdown {
    pub timeout: HumanDuration,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            timeout: HumanDuration::secs(30),
        }
    }
}

impl Config {
    /// The options for a channel, or `None` if it names an unknown namespace.
    pub fn channel_options(&self, namespace: &str) -> Option<&ChannelOptions> {
        if namespace.is_empty() {
            return Some(&self.channel.without_namespace);
        }
        self.channel
            .namespaces
            .iter()
            .find(|n| n.name == namespace)
            .map(|n| &n.options)
    }

    pub fn ping_interval(&self) -> Duration {
        self.client.ping_interval.0
    }
}
