//! `chorus-api`: accounts, chats and membership in PostgreSQL; sends through Kafka; history
//! from DynamoDB; the hub's tokens and subscribe proxy.
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | defaults, TOML file, `CHORUS_API__*` overrides, validated |
//! | [`db`] | the PostgreSQL pool and the embedded migrations (`migrations/`) |
//! | [`state`] | [`state::AppState`]: the pools and clients every handler shares |
//! | [`app`] | the router: every feature's `routes()`, documents, probes, layers |
//! | [`extract`] | [`extract::ChatId`] and [`extract::Member`] for chat routes |
//! | [`server`] | serve until shutdown, with the outbox relay and the state consumer |
//! | [`auth`] | register, login, access and refresh tokens, `/me` |
//! | [`chats`] | chats and membership, row-locked, each change with its outbox events; roles through the Redis cache-aside layer |
//! | [`messages`] | send (Kafka, idempotency keys) and history (DynamoDB, ULID cursor) |
//! | [`media`] | image and voice uploads into the object store; members-only reads with Range |
//! | [`hub`] | the hub's tokens, its subscribe proxy, its server API |
//! | [`outbox`] | the transactional outbox and its relay to Kafka; the state-event consumer ([`outbox::reactor`]) |
//! | [`housekeeping`] | pruning old send keys and expired refresh tokens |
//! | [`failpoint`] | crash points for the crash-safety tests (`debug.crash_at`) |
//! | [`kafka`] | the idempotent producer and the consumer config |
//! | [`ratelimit`] | token buckets on login and send |
//! | [`health`], [`metrics`] | `/health`, `/metrics` |
//! | [`openapi`] | the OpenAPI document |
//! | [`seed`] | fake users, chats and messages for demos and load tests |
//! | [`text`] | names, titles and message bodies: lengths, no control characters |
//! | [`web`] | the web client's built files at `/`, `index.html` for the pages it routes itself |
//! | [`unread`] | `Connection: close` on a response sent before its request body was read |
//! | [`error`], [`body`] | the one JSON error shape, and extractors that use it |

pub mod app;
pub mod auth;
pub mod body;
pub mod chats;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod failpoint;
pub mod health;
pub mod housekeeping;
pub mod hub;
pub mod kafka;
pub mod media;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod ratelimit;
pub mod seed;
pub mod server;
pub mod state;
pub mod text;
pub mod unread;
pub mod web;
