//! `chorus-api seed`: fake users, chats and messages for demos and load tests.
//!
//! Users are `<prefix>_<n>` with one shared password (printed); chats get random members and
//! their outbox events like any chat; messages are produced to Kafka exactly as a send would
//! (so the hub delivers them and the sink stores them).

use std::time::Duration;

use anyhow::Context;
use chorus_protocol::event::{Author, ChatEvent, EventBody, Message, VERSION};
use chorus_protocol::state::StateBody;
use serde_json::json;

use crate::state::AppState;

#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    #[arg(long, default_value_t = 20)]
    pub users: usize,
    #[arg(long, default_value_t = 5)]
    pub chats: usize,
    /// Members per chat (the owner included), at most `users`.
    #[arg(long, default_value_t = 5)]
    pub members: usize,
    /// Messages per chat.
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Username prefix; a second run with another prefix adds more.
    #[arg(long, default_value = "demo")]
    pub prefix: String,
    #[arg(long, default_value = "chorus-demo-password")]
    pub password: String,
}

const WORDS: &[&str] = &[
    "hello", "voice", "note", "later", "lunch", "deploy", "kafka", "ship", "review", "coffee",
    "meeting", "tomorrow", "done", "thanks", "look", "at", "this", "the", "build", "is", "green",
];

pub async fn run(s: &AppState, a: &SeedArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.users > 0 && a.members > 0,
        "--users and --members must be positive"
    );
    let hash = crate::auth::password::hash(a.password.clone())
        .await
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    let mut users: Vec<(i64, String)> = Vec::with_capacity(a.users);
    for n in 0..a.users {
        let username = format!("{}_{n}", a.prefix);
        let display = format!("{} {n}", a.prefix);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, display_name, password_hash) VALUES ($1, $2, $3)
             ON CONFLICT (username) DO UPDATE SET display_name = EXCLUDED.display_name RETURNING id",
        )
        .bind(&username)
        .bind(&display)
        .bind(&hash)
        .fetch_one(&s.db)
        .await
        .context("inserting users")?;
        users.push((id, display));
    }
    let mut chats = Vec::with_capacity(a.chats);
    let mut sent = 0usize;
    for c in 0..a.chats {
        let owner = fastrand::usize(..users.len());
        let mut members = vec![owner];
        while members.len() < a.members.min(users.len()) {
            let m = fastrand::usize(..users.len());
            if !members.contains(&m) {
                members.push(m);
            }
        }
        let mut tx = s.db.begin().await?;
        let title = format!("{} chat {c}", a.prefix);
        let chat: i64 = sqlx::query_scalar(
            "INSERT INTO chats (title, created_by) VALUES ($1, $2) RETURNING id",
        )
        .bind(&title)
        .bind(users[owner].0)
        .fetch_one(&mut *tx)
        .await?;
        for (i, &m) in members.iter().enumerate() {
            let role = if i == 0 { "owner" } else { "member" };
            sqlx::query("INSERT INTO chat_members (chat_id, user_id, role) VALUES ($1, $2, $3)")
                .bind(chat)
                .bind(users[m].0)
                .bind(role)
                .execute(&mut *tx)
                .await?;
            crate::outbox::record(
                &mut tx,
                s,
                chat,
                StateBody::MemberAdded {
                    user_id: users[m].0.to_string(),
                    role: role.into(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        s.outbox_wake.notify_one();
        for _ in 0..a.messages {
            let (author, name) = &users[members[fastrand::usize(..members.len())]];
            let text: Vec<&str> = (0..fastrand::usize(3..12))
                .map(|_| WORDS[fastrand::usize(..WORDS.len())])
                .collect();
            let event = ChatEvent {
                v: VERSION,
                event_id: s.ulid(),
                chat_id: chat.to_string(),
                ts: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                body: EventBody::MessageCreated(Message {
                    message_id: s.ulid(),
                    author: Author {
                        id: author.to_string(),
                        name: Some(name.clone()),
                        avatar: None,
                    },
                    text: Some(text.join(" ")),
                    attachment: None,
                    idempotency_key: None,
                }),
            };
            crate::kafka::send(
                &s.producer,
                &s.config.kafka.messages_topic,
                &event.chat_id,
                &event.encode(),
                Duration::from_secs(30),
            )
            .await
            .map_err(|e| anyhow::anyhow!("producing a message: {e}"))?;
            sent += 1;
        }
        chats.push(chat);
    }
    // The relay of a running API publishes the outbox; publish it here too, in case none runs.
    while crate::outbox::relay_once(s).await? > 0 {}
    println!(
        "{}",
        json!({"users": users.len(), "chats": chats, "messages": sent,
               "usernames": format!("{}_0..{}_{}", a.prefix, a.prefix, a.users - 1), "password": a.password})
    );
    Ok(())
}
