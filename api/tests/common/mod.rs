//! A database of its own per test in the machine's PostgreSQL (127.0.0.1:5432, trust auth),
//! migrated, and the router driven in-process with `oneshot`.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chorus_api::app::app;
use chorus_api::config::Config;
use chorus_api::state::AppState;
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, Row};
use tower::ServiceExt;

pub mod stack;

pub use chorus_testkit::{client, dynamodb, net, speech, tansu};
pub use chorus_testkit::{eventually, free_port, listening};

pub const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
/// The proxy key every test API expects from the hub.
pub const PROXY_KEY: &str = "proxy-key";

fn admin_url() -> String {
    std::env::var("CHORUS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestApi {
    pub state: AppState,
    name: String,
    /// The hub a removal's cut-off calls, when the test has one (`start_with_hub`).
    pub hub: Option<chorus_testkit::hub::HubProcess>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Drops databases earlier test processes left behind (their process is gone).
async fn sweep(admin: &mut PgConnection) {
    let rows = admin
        .fetch_all("SELECT datname FROM pg_database WHERE datname LIKE 'chorus_test_%'")
        .await
        .unwrap();
    for row in rows {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    }
}

impl TestApi {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestApi {
        let mut admin = PgConnection::connect(&format!("{}/postgres", admin_url()))
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (scripts/test checks it)");
        sweep(&mut admin).await;
        let name = format!(
            "chorus_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let mut config = Config {
            database_url: format!("{}/{name}", admin_url()),
            jwt_secret: SECRET.into(),
            ..Config::default()
        };
        // Every test database numbers its chats from 1: its cache keys must not meet another's.
        config.redis.prefix = name.clone();
        config.media.path = std::env::temp_dir()
            .join(format!("{name}-media"))
            .display()
            .to_string();
        // No thumbnail queue unless a test has the topic (the stack does).
        config.kafka.image_topic = String::new();
        config.hub.proxy_key = PROXY_KEY.into();
        // Tests register many users from one address.
        config.limits.register_per_minute = 1000;
        config.limits.refresh_per_minute = 1000;
        tweak(&mut config);
        config.validate().unwrap();
        TestApi {
            state: AppState::connect(config).await.unwrap(),
            name,
            hub: None,
        }
    }

    /// `start` with a real hub process of its own behind `hub.api_url`: a removal answers only
    /// once the hub has cut the member off, so any test that removes a member needs one.
    pub async fn start_with_hub(tweak: impl FnOnce(&mut Config)) -> TestApi {
        const HUB_KEY: &str = "hub-api-key";
        let hub = chorus_testkit::hub::HubProcess::with_config(
            &serde_json::json!({"http_api": {"key": HUB_KEY}}),
        )
        .await;
        let url = format!("{}/api", hub.http());
        let mut api = Self::start(move |c| {
            c.hub.api_url = url;
            c.hub.api_key = HUB_KEY.into();
            tweak(c);
        })
        .await;
        api.hub = Some(hub);
        api
    }

    /// Sends a request; returns the status, the body (JSON; Null when empty) and Set-Cookie.
    pub async fn call(&self, req: Request<Body>) -> (StatusCode, Value, Option<String>) {
        let resp = app(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            // Text (`/metrics`) comes back as a string; every other body is JSON.
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, body, cookie)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value, Option<String>) {
        self.call(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub async fn get(&self, path: &str, bearer: &str) -> (StatusCode, Value) {
        let (s, b, _) = self
            .call(
                Request::get(path)
                    .header("authorization", format!("Bearer {bearer}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        (s, b)
    }

    /// Any method, optional bearer and JSON body; returns the status and JSON body.
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = Request::builder().method(method).uri(path);
        if let Some(b) = bearer {
            r = r.header("authorization", format!("Bearer {b}"));
        }
        let body = match body {
            Some(b) => {
                r = r.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let (s, b, _) = self.call(r.body(body).unwrap()).await;
        (s, b)
    }

    /// Registers and logs in; returns (user id, access token).
    pub async fn user(&self, name: &str) -> (String, String) {
        let (s, b, _) = self
            .post(
                "/auth/register",
                serde_json::json!({"username": name, "password": "password-1"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let id = b["id"].as_str().unwrap().to_owned();
        let (s, b, _) = self
            .post(
                "/auth/login",
                serde_json::json!({"username": name, "password": "password-1"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        (id, b["access_token"].as_str().unwrap().to_owned())
    }

    pub async fn stop(self) {
        let _ = std::fs::remove_dir_all(&self.state.config.media.path);
        self.state.db.close().await;
        let mut admin = PgConnection::connect(&format!("{}/postgres", admin_url()))
            .await
            .unwrap();
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
    }
}

/// A PNG of `w`×`h` as far as its header goes (signature and IHDR; what the server reads).
pub fn png(w: u32, h: u32, tail: usize) -> Vec<u8> {
    let mut b = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
    b.extend_from_slice(b"IHDR");
    b.extend_from_slice(&w.to_be_bytes());
    b.extend_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    b.extend((0..tail).map(|i| (i % 251) as u8));
    b
}

pub fn pause(ms: u64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(ms))
}
