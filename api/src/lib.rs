//! `chorus-api`: accounts and auth so far (issue 7 is in progress: chats, the outbox, sending,
//! history and the subscribe proxy come next).
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | defaults and `CHORUS_API__*` overrides, validated |
//! | [`db`] | the PostgreSQL pool and the embedded migrations (`migrations/`) |
//! | [`app`] | the router and its state |
//! | [`accounts`] | register, login, refresh, logout, `/me` |
//! | [`password`] | argon2id hashing on the blocking pool |
//! | [`access`] | access-token JWTs and the bearer extractor |
//! | [`refresh`] | refresh-token families: rotation, grace window, reuse detection |
//! | [`error`], [`body`] | the one JSON error shape, and a JSON extractor that uses it |

pub mod access;
pub mod accounts;
pub mod app;
pub mod body;
pub mod config;
pub mod db;
pub mod error;
pub mod password;
pub mod refresh;
