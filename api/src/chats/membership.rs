//! Who is in which chat, and in what role: PostgreSQL is the truth, Redis a cache-aside layer
//! in front of it (`<prefix>:member:<chat>:<user>` → role or `none`, with a TTL).
//!
//! Entries are deleted after every membership change commits (here, by the request that made
//! it) and again when its state event is consumed, which also covers other API replicas and a
//! reader that cached the old answer in between. Redis being down only costs speed: lookups
//! go to PostgreSQL.

use fred::prelude::*;
use fred::types::Expiration;
use sqlx::Row;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    pub fn manages(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

fn key(s: &AppState, chat: i64, user: i64) -> String {
    format!("{}:member:{chat}:{user}", s.config.redis.prefix)
}

fn name_key(s: &AppState, user: impl std::fmt::Display) -> String {
    format!("{}:user:{user}:name", s.config.redis.prefix)
}

/// `user`'s role in `chat`, or `None` when not a member (or no such chat).
pub async fn role(s: &AppState, chat: i64, user: i64) -> Result<Option<Role>, ApiError> {
    let k = key(s, chat, user);
    match s.redis.get::<Option<String>, _>(&k).await {
        Ok(Some(v)) => {
            s.metrics.membership_cache.with_label_values(&["hit"]).inc();
            return Ok(Role::parse(&v));
        }
        Ok(None) => s
            .metrics
            .membership_cache
            .with_label_values(&["miss"])
            .inc(),
        Err(e) => {
            s.metrics
                .membership_cache
                .with_label_values(&["bypass"])
                .inc();
            tracing::debug!(error = %e, "membership cache unavailable");
        }
    }
    let role = stored_role(s, chat, user).await?;
    let value = role.map_or("none", Role::as_str);
    let ttl = s.config.redis.cache_ttl_secs as i64;
    if let Err(e) = s
        .redis
        .set::<(), _, _>(&k, value, Some(Expiration::EX(ttl)), None, false)
        .await
    {
        tracing::debug!(error = %e, "membership cache not filled");
    }
    Ok(role)
}

/// `user`'s role in `chat` as PostgreSQL holds it now, past the cache: what grants access to a
/// chat's channels (the hub's subscribe proxy). A cached answer read just before a removal
/// committed can be written back after the removal dropped it; it must never let a removed
/// member subscribe again.
pub async fn stored_role(s: &AppState, chat: i64, user: i64) -> Result<Option<Role>, ApiError> {
    Ok(
        sqlx::query("SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $2")
            .bind(chat)
            .bind(user)
            .fetch_optional(&s.db)
            .await?
            .map(|r| r.try_get::<String, _>("role"))
            .transpose()?
            .and_then(|r| Role::parse(&r)),
    )
}

/// The caller's role, or the error a non-member gets: 404, so chat ids are not probed.
pub async fn require(s: &AppState, chat: i64, user: i64) -> Result<Role, ApiError> {
    role(s, chat, user).await?.ok_or(ApiError::NotFound)
}

/// Drops cached answers for these users in `chat`.
pub async fn invalidate(s: &AppState, chat: i64, users: &[i64]) -> Result<(), fred::error::Error> {
    if users.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = users.iter().map(|&u| key(s, chat, u)).collect();
    s.redis.del::<i64, _>(keys).await.map(drop)
}

/// Display names by user id, cache-aside (`<prefix>:user:<id>:name`); unknown ids are left out.
pub async fn display_names(
    s: &AppState,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let mut names = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(names);
    }
    let keys: Vec<String> = ids.iter().map(|id| name_key(s, id)).collect();
    let cached: Vec<Option<String>> = s
        .redis
        .mget(keys)
        .await
        .unwrap_or_else(|_| vec![None; ids.len()]);
    let mut missing: Vec<i64> = Vec::new();
    for (id, name) in ids.iter().zip(cached) {
        match name {
            Some(n) => {
                names.insert(id.clone(), n);
            }
            None => missing.extend(id.parse::<i64>().ok()),
        }
    }
    if !missing.is_empty() {
        let rows = sqlx::query("SELECT id, display_name FROM users WHERE id = ANY($1)")
            .bind(&missing)
            .fetch_all(&s.db)
            .await?;
        let ttl = s.config.redis.cache_ttl_secs as i64;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let name: String = row.try_get("display_name")?;
            let _ = s
                .redis
                .set::<(), _, _>(
                    name_key(s, id),
                    name.as_str(),
                    Some(Expiration::EX(ttl)),
                    None,
                    false,
                )
                .await;
            names.insert(id.to_string(), name);
        }
    }
    Ok(names)
}
