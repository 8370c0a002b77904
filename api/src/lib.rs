//! `chorus-api`: accounts, chats and membership in PostgreSQL; sends through Kafka; history
//! from DynamoDB; the hub's tokens and subscribe proxy.
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | defaults, TOML file, `CHORUS_API__*` overrides, validated |
//! | [`db`] | the PostgreSQL pool and the embedded migrations (`migrations/`) |
//! | [`app`] | the router and its shared state |
//! | [`server`] | serve until shutdown, with the outbox relay and the state consumer |
//! | [`accounts`], [`password`], [`access`], [`refresh`] | register, login, tokens, `/me` |
//! | [`chats`] | chats and membership, row-locked, each change with its outbox events |
//! | [`membership`] | roles through the Redis cache-aside layer; display names |
//! | [`outbox`] | the transactional outbox and its relay to Kafka (on a connection of its own) |
//! | [`housekeeping`] | pruning old send keys and expired refresh tokens |
//! | [`failpoint`] | crash points for the crash-safety tests (`debug.crash_at`) |
//! | [`reactor`] | the state-event consumer: cache invalidation, hub unsubscribes |
//! | [`messages`] | send (Kafka, idempotency keys) and history (DynamoDB, ULID cursor) |
//! | [`media`] | image uploads into the object store; members-only reads with Range |
//! | [`hubtokens`], [`proxy`], [`hubapi`] | the hub's tokens, its subscribe proxy, its server API |
//! | [`kafka`] | the idempotent producer and the consumer config |
//! | [`ratelimit`] | token buckets on login and send |
//! | [`health`], [`metrics`] | `/health`, `/metrics` |
//! | [`openapi`] | the OpenAPI document |
//! | [`seed`] | fake users, chats and messages for demos and load tests |
//! | [`text`] | names, titles and message bodies: lengths, no control characters |
//! | [`unread`] | `Connection: close` on a response sent before its request body was read |
//! | [`error`], [`body`] | the one JSON error shape, and extractors that use it |

pub mod access;
pub mod accounts;
pub mod app;
pub mod body;
pub mod chats;
pub mod config;
pub mod db;
pub mod error;
pub mod failpoint;
pub mod health;
pub mod housekeeping;
pub mod hubapi;
pub mod hubtokens;
pub mod kafka;
pub mod media;
pub mod membership;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod password;
pub mod proxy;
pub mod ratelimit;
pub mod reactor;
pub mod refresh;
pub mod seed;
pub mod server;
pub mod text;
pub mod unread;
