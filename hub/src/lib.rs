//! Chorus hub: a Centrifugo-compatible WebSocket hub (client protocol v2, JSON and Protobuf).
//!
//! Map of the crate:
//! - [`config`]: Centrifugo v6 config keys from JSON/YAML/TOML plus environment, validated.
//! - [`node`]: one hub node; owns the [`hub`], the engines and the auth pieces.
//! - [`hub`]: node-local registry of clients and channel subscribers; fan-out.
//! - [`subscribers`]: one channel's subscriber set, a vector while small, a map when large.
//! - [`engine`]: picks the engine (`memory` or `redis`); [`redis_link`]: the Redis
//!   connections its halves share, one set per shard; [`placement`]: a channel's shard and
//!   cluster hash tag.
//! - [`broker`]: PUB/SUB + history seam, `memory` and `redis` side by side.
//! - [`presence`]: presence seam, `memory` and `redis` side by side.
//! - [`recovery`]: whether a stream position continues, and `recovered`: pure, one place.
//! - [`revoked`]: connection tokens withdrawn before they expire (`invalidate_user_tokens`),
//!   `memory` and `redis` side by side.
//! - [`action`]: what the server API does to a user's connections, typed; the node applies
//!   it here and the cluster carries it to the other nodes.
//! - [`cluster`]: other nodes over the engine's control channel, transport only (info,
//!   actions, surveys).
//! - [`auth`]: connection/subscription JWTs and the subscribe authorizer seam.
//! - [`proxy`]: Centrifugo's HTTP proxies (connect, refresh, subscribe, publish,
//!   sub_refresh, rpc, named), one caller for all.
//! - [`client`]: one client connection: queue, session (commands) and connection task, for
//!   WebSocket, emulated (HTTP-streaming, SSE) and unidirectional transports.
//! - [`command`]: server API commands, parsed from a method and its JSON params and run by the
//!   node; shared by the HTTP API and the Kafka consumer's API mode.
//! - [`api`]: the server HTTP API (`POST /api/<method>`): keys, bodies, batches, error modes.
//! - [`consumer`]: Kafka consumers that publish records into channels.
//! - [`origin`]: the `client.allowed_origins` check every client transport makes.
//! - [`server`]: the HTTP app (WebSocket, API, health, metrics) and graceful run.
//! - [`uni_transport`]: the unidirectional endpoints (uni_websocket, uni_sse,
//!   uni_http_stream) over [`client::uni`].
//! - [`emulation_transport`]: bidirectional emulation (`/connection/http_stream`,
//!   `/connection/sse`, `/emulation`) over [`client::emulated`]; [`stream_body`]: how an
//!   HTTP response carries a session's frames, for both.
//! - [`listener`] and [`limits`]: the open-files budget, so the hub never dies of EMFILE;
//!   [`socket`]: a client socket shared by hyper, the connection task and the fan-out.
//! - [`metrics`]: Prometheus metrics (logs are `chorus_runtime::process`'s).

pub mod action;
pub mod api;
pub mod auth;
pub mod broker;
pub mod client;
pub mod cluster;
pub mod command;
pub mod config;
pub mod consumer;
pub mod emulation_transport;
pub mod engine;
pub mod genconfig;
pub mod glob;
pub mod hub;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod node;
pub mod origin;
pub mod placement;
pub mod presence;
pub mod proxy;
pub mod recovery;
pub mod redis_link;
pub mod revoked;
pub mod server;
pub mod socket;
pub mod stream_body;
pub mod subscribers;
pub mod uni_transport;

pub use config::Config;
pub use node::{Node, NodeParts};
