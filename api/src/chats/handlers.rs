//! Chats and membership: create, list, get, rename, delete; add, remove, change role; leave.
//!
//! Every change runs in one transaction that first locks the chat's row (`FOR UPDATE`), so two
//! changes to one chat's membership run one after the other: two admins leaving at once
//! cannot both see the other as the remaining admin. The change's events go to the outbox in
//! the same transaction; cached memberships are dropped after the commit, and a removed member
//! is cut off on the hub before the request answers (`cutoff`).
//!
//! Roles: `owner` (the creator; manages, deletes, sets roles: the only one who makes admins,
//! whether by a role change or by adding a member as admin), `admin` (manages members),
//! `member`. A chat with members always keeps a manager: the last one cannot leave or be
//! demoted; an owner who leaves hands ownership to the longest-standing admin.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chorus_protocol::state::StateBody;
use serde::Deserialize;
use serde_json::json;
use sqlx::{PgConnection, Row};

use crate::auth::access::User;
use crate::body::Body;
use crate::chats::cutoff;
use crate::chats::membership::{self, Role};
use crate::error::ApiError;
use crate::extract::{ChatId, Member};
use crate::outbox;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChat {
    title: String,
    /// User ids added as members at creation.
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    title: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    role: String,
}

/// A path id: numbers only; anything else is a chat that does not exist.
fn user_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| ApiError::Validation(format!("user_id {raw:?} is not a user id")))
}

fn check_title(t: &str) -> Result<String, ApiError> {
    crate::text::line(t, 100).ok_or_else(|| {
        ApiError::Validation("title: 1 to 100 characters, no control characters".into())
    })
}

/// A role that may be given: `member` or `admin` (ownership is not given, only inherited).
fn grantable(role: Option<&str>) -> Result<Role, ApiError> {
    match role.unwrap_or("member") {
        "member" => Ok(Role::Member),
        "admin" => Ok(Role::Admin),
        other => Err(ApiError::Validation(format!(
            "role {other:?}: member or admin"
        ))),
    }
}

/// Locks the chat's row and returns the caller's role in it (404 when not a member).
async fn lock(tx: &mut PgConnection, chat: i64, user: i64) -> Result<Role, ApiError> {
    let exists = sqlx::query("SELECT id FROM chats WHERE id = $1 FOR UPDATE")
        .bind(chat)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(ApiError::NotFound);
    }
    role_in(tx, chat, user).await?.ok_or(ApiError::NotFound)
}

async fn role_in(tx: &mut PgConnection, chat: i64, user: i64) -> Result<Option<Role>, ApiError> {
    let row = sqlx::query("SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $2")
        .bind(chat)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>("role"))
        .transpose()?
        .and_then(|r| Role::parse(&r)))
}

async fn managers_other_than(tx: &mut PgConnection, chat: i64, user: i64) -> Result<i64, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM chat_members WHERE chat_id = $1 AND user_id <> $2 AND role IN ('owner', 'admin')",
    )
    .bind(chat)
    .bind(user)
    .fetch_one(&mut *tx)
    .await?)
}

async fn members_other_than(tx: &mut PgConnection, chat: i64, user: i64) -> Result<i64, ApiError> {
    Ok(
        sqlx::query_scalar(
            "SELECT count(*) FROM chat_members WHERE chat_id = $1 AND user_id <> $2",
        )
        .bind(chat)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?,
    )
}

/// After a commit: wake the relay, drop stale cache entries (the state event drops them
/// again; a failure here is only logged).
async fn committed(s: &AppState, chat: i64, users: &[i64]) {
    s.outbox_wake.notify_one();
    if let Err(e) = membership::invalidate(s, chat, users).await {
        tracing::warn!(chat, error = %e, "membership cache not invalidated; the state event will");
    }
}

pub async fn create(
    State(s): State<AppState>,
    User(me): User,
    Body(c): Body<NewChat>,
) -> Result<Response, ApiError> {
    let title = check_title(&c.title)?;
    if c.members.len() > 1000 {
        return Err(ApiError::Validation("members: at most 1000".into()));
    }
    let mut members: Vec<i64> = c
        .members
        .iter()
        .map(|m| user_id(m))
        .collect::<Result<_, _>>()?;
    members.sort_unstable();
    members.dedup();
    members.retain(|&m| m != me);
    let mut tx = s.db.begin().await?;
    let chat: i64 =
        sqlx::query_scalar("INSERT INTO chats (title, created_by) VALUES ($1, $2) RETURNING id")
            .bind(&title)
            .bind(me)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query("INSERT INTO chat_members (chat_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(chat)
        .bind(me)
        .execute(&mut *tx)
        .await?;
    outbox::record(
        &mut tx,
        &s,
        chat,
        StateBody::ChatCreated {
            title: title.clone(),
            owner_id: me.to_string(),
        },
    )
    .await?;
    for &m in &members {
        add(&mut tx, &s, chat, m, Role::Member).await?;
    }
    tx.commit().await?;
    members.push(me);
    committed(&s, chat, &members).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": chat.to_string(), "title": title, "role": "owner"})),
    )
        .into_response())
}

/// Adds `user` (who must exist) with `role`, or changes an existing member's role.
async fn add(
    tx: &mut PgConnection,
    s: &AppState,
    chat: i64,
    user: i64,
    role: Role,
) -> Result<(), ApiError> {
    let exists = sqlx::query("SELECT 1 FROM users WHERE id = $1")
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(ApiError::Missing(format!("user {user} does not exist")));
    }
    sqlx::query(
        "INSERT INTO chat_members (chat_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (chat_id, user_id) DO UPDATE SET role = EXCLUDED.role",
    )
    .bind(chat)
    .bind(user)
    .bind(role.as_str())
    .execute(&mut *tx)
    .await?;
    outbox::record(
        tx,
        s,
        chat,
        StateBody::MemberAdded {
            user_id: user.to_string(),
            role: role.as_str().into(),
        },
    )
    .await?;
    Ok(())
}

pub async fn list(State(s): State<AppState>, User(me): User) -> Result<Response, ApiError> {
    let rows = sqlx::query(
        "SELECT c.id, c.title, m.role FROM chat_members m JOIN chats c ON c.id = m.chat_id
         WHERE m.user_id = $1 ORDER BY c.id",
    )
    .bind(me)
    .fetch_all(&s.db)
    .await?;
    let chats = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "id": r.try_get::<i64, _>("id")?.to_string(),
                "title": r.try_get::<String, _>("title")?,
                "role": r.try_get::<String, _>("role")?,
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(json!({ "chats": chats })).into_response())
}

pub async fn get(State(s): State<AppState>, m: Member) -> Result<Response, ApiError> {
    let chat = m.chat;
    let title: Option<String> = sqlx::query_scalar("SELECT title FROM chats WHERE id = $1")
        .bind(chat)
        .fetch_optional(&s.db)
        .await?;
    let title = title.ok_or(ApiError::NotFound)?;
    let rows = sqlx::query(
        "SELECT u.id, u.username, u.display_name, m.role FROM chat_members m
         JOIN users u ON u.id = m.user_id WHERE m.chat_id = $1 ORDER BY m.joined_at, u.id",
    )
    .bind(chat)
    .fetch_all(&s.db)
    .await?;
    let members = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "id": r.try_get::<i64, _>("id")?.to_string(),
                "username": r.try_get::<String, _>("username")?,
                "display_name": r.try_get::<String, _>("display_name")?,
                "role": r.try_get::<String, _>("role")?,
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(json!({"id": chat.to_string(), "title": title, "members": members})).into_response())
}

pub async fn rename(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
    Body(r): Body<Rename>,
) -> Result<Response, ApiError> {
    let title = check_title(&r.title)?;
    let mut tx = s.db.begin().await?;
    if !lock(&mut tx, chat, me).await?.manages() {
        return Err(ApiError::Forbidden("only owners and admins rename a chat"));
    }
    sqlx::query("UPDATE chats SET title = $2 WHERE id = $1")
        .bind(chat)
        .bind(&title)
        .execute(&mut *tx)
        .await?;
    outbox::record(
        &mut tx,
        &s,
        chat,
        StateBody::ChatUpdated {
            title: title.clone(),
        },
    )
    .await?;
    tx.commit().await?;
    committed(&s, chat, &[]).await;
    Ok(Json(json!({"id": chat.to_string(), "title": title})).into_response())
}

pub async fn remove(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
) -> Result<Response, ApiError> {
    let mut tx = s.db.begin().await?;
    if lock(&mut tx, chat, me).await? != Role::Owner {
        return Err(ApiError::Forbidden("only the owner deletes a chat"));
    }
    let members: Vec<i64> =
        sqlx::query_scalar("SELECT user_id FROM chat_members WHERE chat_id = $1")
            .bind(chat)
            .fetch_all(&mut *tx)
            .await?;
    sqlx::query("DELETE FROM chats WHERE id = $1")
        .bind(chat)
        .execute(&mut *tx)
        .await?;
    outbox::record(
        &mut tx,
        &s,
        chat,
        StateBody::ChatDeleted {
            members: members.iter().map(i64::to_string).collect(),
        },
    )
    .await?;
    tx.commit().await?;
    committed(&s, chat, &members).await;
    cutoff::cut_off(&s, chat, &members).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn add_member(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
    Body(m): Body<NewMember>,
) -> Result<Response, ApiError> {
    let user = user_id(&m.user_id)?;
    let role = grantable(m.role.as_deref())?;
    let mut tx = s.db.begin().await?;
    let mine = lock(&mut tx, chat, me).await?;
    if !mine.manages() {
        return Err(ApiError::Forbidden("only owners and admins add members"));
    }
    // Otherwise an admin could make anyone an admin by removing and adding them back, which
    // `set_role` refuses.
    if role == Role::Admin && mine != Role::Owner {
        return Err(ApiError::Forbidden("only the owner grants the admin role"));
    }
    if role_in(&mut tx, chat, user).await?.is_some() {
        return Err(ApiError::Conflict("already a member"));
    }
    add(&mut tx, &s, chat, user, role).await?;
    tx.commit().await?;
    committed(&s, chat, &[user]).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"chat_id": chat.to_string(), "user_id": user.to_string(), "role": role.as_str()})),
    )
        .into_response())
}

pub async fn set_role(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
    Path((_, raw_user)): Path<(String, String)>,
    Body(r): Body<NewRole>,
) -> Result<Response, ApiError> {
    let user = user_id(&raw_user)?;
    let role = grantable(Some(&r.role))?;
    let mut tx = s.db.begin().await?;
    if lock(&mut tx, chat, me).await? != Role::Owner {
        return Err(ApiError::Forbidden("only the owner changes roles"));
    }
    match role_in(&mut tx, chat, user).await? {
        None => return Err(ApiError::NotFound),
        Some(Role::Owner) => return Err(ApiError::Conflict("the owner's role is not changed")),
        Some(current) if current == role => {
            return Ok(
                Json(json!({"user_id": user.to_string(), "role": role.as_str()})).into_response(),
            )
        }
        Some(_) => {}
    }
    add(&mut tx, &s, chat, user, role).await?;
    tx.commit().await?;
    committed(&s, chat, &[user]).await;
    Ok(Json(json!({"user_id": user.to_string(), "role": role.as_str()})).into_response())
}

pub async fn remove_member(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
    Path((_, raw_user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let user = user_id(&raw_user)?;
    if user == me {
        return leave(State(s), User(me), ChatId(chat)).await;
    }
    let mut tx = s.db.begin().await?;
    let mine = lock(&mut tx, chat, me).await?;
    if !mine.manages() {
        return Err(ApiError::Forbidden("only owners and admins remove members"));
    }
    match role_in(&mut tx, chat, user).await? {
        None => return Err(ApiError::NotFound),
        Some(Role::Owner) => return Err(ApiError::Forbidden("the owner cannot be removed")),
        Some(Role::Admin) if mine != Role::Owner => {
            return Err(ApiError::Forbidden("only the owner removes admins"))
        }
        Some(_) => {}
    }
    drop_member(&mut tx, &s, chat, user).await?;
    tx.commit().await?;
    committed(&s, chat, &[user]).await;
    cutoff::cut_off(&s, chat, &[user]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn drop_member(
    tx: &mut PgConnection,
    s: &AppState,
    chat: i64,
    user: i64,
) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2")
        .bind(chat)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    outbox::record(
        tx,
        s,
        chat,
        StateBody::MemberRemoved {
            user_id: user.to_string(),
        },
    )
    .await?;
    Ok(())
}

pub async fn leave(
    State(s): State<AppState>,
    User(me): User,
    ChatId(chat): ChatId,
) -> Result<Response, ApiError> {
    let mut tx = s.db.begin().await?;
    let mine = lock(&mut tx, chat, me).await?;
    let mut changed = vec![me];
    if mine.manages()
        && members_other_than(&mut tx, chat, me).await? > 0
        && managers_other_than(&mut tx, chat, me).await? == 0
    {
        return Err(ApiError::Conflict(
            "the last owner or admin cannot leave: make another member an admin first",
        ));
    }
    if mine == Role::Owner {
        // Ownership passes to the admin who has been there longest.
        let heir: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM chat_members WHERE chat_id = $1 AND role = 'admin'
             ORDER BY joined_at, user_id LIMIT 1",
        )
        .bind(chat)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(heir) = heir {
            sqlx::query(
                "UPDATE chat_members SET role = 'owner' WHERE chat_id = $1 AND user_id = $2",
            )
            .bind(chat)
            .bind(heir)
            .execute(&mut *tx)
            .await?;
            outbox::record(
                &mut tx,
                &s,
                chat,
                StateBody::MemberAdded {
                    user_id: heir.to_string(),
                    role: "owner".into(),
                },
            )
            .await?;
            changed.push(heir);
        }
    }
    drop_member(&mut tx, &s, chat, me).await?;
    tx.commit().await?;
    committed(&s, chat, &changed).await;
    cutoff::cut_off(&s, chat, &[me]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
