//! Chorus hub: a Centrifugo-compatible WebSocket hub (client protocol v2, JSON).
//!
//! Map of the crate:
//! - [`config`]: Centrifugo v6 config keys from JSON/YAML/TOML plus environment, validated.
//! - [`node`]: one hub node; owns the [`hub`], the engines and the auth pieces.
//! - [`hub`]: node-local registry of clients and channel subscribers; fan-out.
//! - [`subscribers`]: one channel's subscriber set, a vector while small, a map when large.
//! - [`engine`]: picks the engine (`memory` or `redis`) and holds the Redis connections.
//! - [`broker`]: PUB/SUB + history seam, `memory` and `redis` side by side.
//! - [`presence`]: presence seam, `memory` and `redis` side by side.
//! - [`cluster`]: other nodes over the engine's control channel (info, API actions, surveys).
//! - [`auth`]: connection/subscription JWTs and the subscribe authorizer seam.
//! - [`client`]: one WebSocket client: queue, session (commands) and connection task.
//! - [`api`]: the server HTTP API (`POST /api/<method>`).
//! - [`consumer`]: Kafka consumers that publish records into channels.
//! - [`server`]: the HTTP app (WebSocket, API, health, metrics) and graceful run.
//! - [`listener`] and [`limits`]: the open-files budget, so the hub never dies of EMFILE.
//! - [`metrics`], [`telemetry`]: Prometheus metrics and logs.

pub mod api;
pub mod auth;
pub mod broker;
pub mod client;
pub mod cluster;
pub mod config;
pub mod consumer;
pub mod engine;
pub mod genconfig;
pub mod hub;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod node;
pub mod presence;
pub mod server;
pub mod subscribers;
pub mod telemetry;

pub use config::Config;
pub use node::{Node, NodeParts};
