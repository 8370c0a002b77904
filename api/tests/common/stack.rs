//! The whole path: tansu and DynamoDB Local as real processes on free loopback ports; the
//! API served in this process on a real socket; a hub (chat-event consumer, subscribe proxy
//! to the API) and the sink as the processes they ship as (the workspace's builds, see
//! `chorus_testkit::process::service_bin`), wired to each other as `scripts/up` wires them;
//! the transcriber too, on request, with the model `scripts/test` prepares.

use std::path::Path;
use std::time::Duration;

use chorus_testkit::hub::HubProcess;
use chorus_testkit::process::{service_bin, ServiceProcess};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::dynamodb::DynamoLocal;
use super::tansu::{unique, Tansu};
use super::TestApi;

/// The hub's connection-token secret, which the API signs with.
pub const HUB_SECRET: &str = "a-hub-secret-of-at-least-32-bytes!!";
pub const HUB_API_KEY: &str = "hub-api-key";
pub const PROXY_KEY: &str = "proxy-key";

pub struct Stack {
    pub tansu: Tansu,
    pub dynamo: DynamoLocal,
    pub api: TestApi,
    pub api_url: String,
    pub hub_ws: String,
    pub hub: HubProcess,
    /// The hub's config, for a second node.
    pub hub_config: Value,
    pub messages_topic: String,
    pub state_topic: String,
    pub audio_topic: String,
    pub image_topic: String,
    pub table: String,
    pub shutdown: CancellationToken,
    sink: ServiceProcess,
    /// Processes started on request (a transcriber, more hubs); killed with the stack.
    more: Mutex<Vec<Extra>>,
    http: reqwest::Client,
}

enum Extra {
    Hub(HubProcess),
    Service(ServiceProcess),
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(|_| {}).await
    }

    /// The stack with the API's config changed by `tweak` (after the stack's own settings).
    pub async fn start_with(
        tweak: impl FnOnce(&mut chorus_api::config::Config) + Send + 'static,
    ) -> Stack {
        let tansu = Tansu::start().await;
        let dynamo = DynamoLocal::start().await;
        let (messages_topic, state_topic, audio_topic, table) = (
            unique("chat-events"),
            unique("chat-state"),
            unique("chat-audio"),
            unique("messages"),
        );
        tansu.create_topic(&messages_topic, 3).await;
        tansu.create_topic(&state_topic, 1).await;
        tansu.create_topic(&audio_topic, 2).await;
        let image_topic = unique("chat-images");
        tansu.create_topic(&image_topic, 1).await;
        let api_tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_addr = api_tcp.local_addr().unwrap();
        let shutdown = CancellationToken::new();

        // The hub: chat events from Kafka, chat subscriptions through the API's proxy.
        let proxy = |path: &str| {
            json!({"endpoint": format!("http://{api_addr}/hub/{path}"), "timeout": "2s",
                   "static_http_headers": {"X-Chorus-Proxy-Key": PROXY_KEY}})
        };
        let toggled = |path: &str, pass: &[&str]| {
            let mut p = proxy(path);
            p["enabled"] = json!(true);
            p["http_headers"] = json!(pass);
            p
        };
        let cfg = json!({
            // The web client is served by the API: its origin may open a socket.
            "client": {"token": {"hmac_secret_key": HUB_SECRET},
                       "allowed_origins": [format!("http://{api_addr}")],
                       // A browser with no connection token: its session cookie.
                       "proxy": {"connect": toggled("connect", &["Cookie"]),
                                 // The session the connection opened with decides.
                                 "refresh": toggled("refresh", &["Cookie"])}},
            "http_api": {"key": HUB_API_KEY},
            "channel": {
                "proxy": {"subscribe": proxy("subscribe"), "publish": proxy("publish")},
                "namespaces": [{"name": "chat", "history_size": 100, "history_ttl": "300s",
                                "force_recovery": true, "subscribe_proxy_enabled": true,
                                "allow_history_for_subscriber": true,
                                "presence": true, "join_leave": true,
                                "force_push_join_leave": true,
                                "allow_presence_for_subscriber": true},
                               // Typing indicators: members publish, members read.
                               {"name": "typing", "subscribe_proxy_enabled": true,
                                "publish_proxy_enabled": true}]},
            "consumers": [{"enabled": true, "name": "chats", "type": "kafka", "kafka": {
                "brokers": [tansu.brokers()], "topics": [messages_topic.clone()],
                "consumer_group": unique("hub"), "chat_event_mode": {"enabled": true}}}]
        });
        let hub = HubProcess::with_config(&cfg).await;
        let hub_api = format!("{}/api", hub.http());

        // The API.
        let (brokers, mt, st, at, it, endpoint, tbl) = (
            tansu.brokers(),
            messages_topic.clone(),
            state_topic.clone(),
            audio_topic.clone(),
            image_topic.clone(),
            dynamo.endpoint(),
            table.clone(),
        );
        let api = TestApi::start(move |c| {
            c.kafka.brokers = brokers;
            c.kafka.messages_topic = mt;
            c.kafka.state_topic = st;
            c.kafka.audio_topic = at;
            c.kafka.image_topic = it;
            c.kafka.state_group = unique("api-state");
            c.dynamodb.endpoint = endpoint;
            c.dynamodb.table = tbl;
            c.hub.api_url = hub_api;
            c.hub.api_key = HUB_API_KEY.into();
            c.hub.token_hmac_secret = HUB_SECRET.into();
            c.hub.proxy_key = PROXY_KEY.into();
            c.outbox.poll_ms = 100;
            // The built web client, when `scripts/test` (or `npm run build` in web/) built it.
            c.web.dir = web_dist().display().to_string();
            tweak(c);
        })
        .await;
        tokio::spawn(chorus_api::server::run(
            api.state.clone(),
            api_tcp,
            shutdown.clone(),
        ));

        // The sink: the same topic into DynamoDB.
        let sink = ServiceProcess::start(
            &service_bin("chorus-sink"),
            &[],
            "CHORUS_SINK__",
            &[
                ("KAFKA__BROKERS", tansu.brokers()),
                ("KAFKA__TOPIC", messages_topic.clone()),
                ("KAFKA__GROUP", unique("sink")),
                ("DYNAMODB__ENDPOINT", dynamo.endpoint()),
                ("DYNAMODB__TABLE", table.clone()),
                ("BATCH__FLUSH_INTERVAL_MS", "20".to_owned()),
            ],
        )
        .await;

        Stack {
            tansu,
            dynamo,
            api,
            api_url: format!("http://{api_addr}"),
            hub_ws: hub.url(),
            hub,
            hub_config: cfg,
            messages_topic,
            state_topic,
            audio_topic,
            image_topic,
            table,
            shutdown,
            sink,
            more: Mutex::new(Vec::new()),
            http: reqwest::Client::new(),
        }
    }

    /// A transcriber on the stack's topics and media directory, as its own process; it stops
    /// with the stack.
    pub async fn start_transcriber(&self) {
        let media = &self.api.state.config.media.path;
        let transcriber = ServiceProcess::start(
            &service_bin("chorus-transcriber"),
            &["serve"],
            "CHORUS_TRANSCRIBER__",
            &[
                ("KAFKA__BROKERS", self.tansu.brokers()),
                ("KAFKA__AUDIO_TOPIC", self.audio_topic.clone()),
                ("KAFKA__IMAGE_TOPIC", self.image_topic.clone()),
                ("KAFKA__MESSAGES_TOPIC", self.messages_topic.clone()),
                ("KAFKA__GROUP", unique("transcriber")),
                ("MODEL__PATH", super::speech::model().display().to_string()),
                ("MEDIA__PATH", Path::new(media).display().to_string()),
            ],
        )
        .await;
        self.more.lock().push(Extra::Service(transcriber));
    }

    /// Another hub node with the stack's config (its own Kafka consumer group, the same
    /// subscribe proxy); returns its WebSocket URL. It stops with the stack.
    pub async fn second_hub(&self) -> String {
        let mut cfg = self.hub_config.clone();
        cfg["consumers"][0]["kafka"]["consumer_group"] = json!(unique("hub-2"));
        let hub = HubProcess::with_config(&cfg).await;
        let url = hub.url();
        self.more.lock().push(Extra::Hub(hub));
        url
    }

    /// A hub connection to `url` made with a connection token from the API.
    pub async fn connect_to(&self, url: &str, access: &str) -> super::client::Client {
        let (s, b, _) = self
            .http("POST", "/hub/connection-token", Some(access), None, &[])
            .await;
        assert_eq!(s, 200, "{b}");
        let mut c = super::client::Client::open(url).await;
        c.send(json!({"id": 1, "connect": {"token": b["token"]}}))
            .await;
        let r = c.reply(1).await;
        assert!(r.get("error").is_none(), "{r}");
        c
    }

    /// An HTTP call to the API over its socket: status, JSON body (Null when empty), headers.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.api_url),
        );
        if let Some(b) = bearer {
            r = r.header("authorization", format!("Bearer {b}"));
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"))
        };
        (status, value, headers)
    }

    /// A multipart upload (`file`) over the API's socket: status and JSON body.
    pub async fn upload(&self, path: &str, bearer: &str, file: &[u8]) -> (u16, Value) {
        let (status, body, _) = self.upload_with_headers(path, bearer, file).await;
        (status, body)
    }

    /// `upload`, with the response's headers.
    pub async fn upload_with_headers(
        &self,
        path: &str,
        bearer: &str,
        file: &[u8],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let (boundary, body) = (
            chorus_testkit::client::MULTIPART_BOUNDARY,
            chorus_testkit::client::multipart_file(file),
        );
        let resp = self
            .http
            .post(format!("{}{path}", self.api_url))
            .header("authorization", format!("Bearer {bearer}"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            headers,
        )
    }

    /// Registers and logs in; returns (user id, access token).
    pub async fn user(&self, name: &str) -> (String, String) {
        let (s, b, _) = self
            .http(
                "POST",
                "/auth/register",
                None,
                Some(json!({"username": name, "password": "password-1"})),
                &[],
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_str().unwrap().to_owned();
        let (s, b, _) = self
            .http(
                "POST",
                "/auth/login",
                None,
                Some(json!({"username": name, "password": "password-1"})),
                &[],
            )
            .await;
        assert_eq!(s, 200, "{b}");
        (id, b["access_token"].as_str().unwrap().to_owned())
    }

    /// A chat `owner` creates with `member` (a user id) added; returns the chat id.
    pub async fn chat_with(&self, owner: &str, title: &str, member: &str) -> String {
        let (s, chat, _) = self
            .http(
                "POST",
                "/chats",
                Some(owner),
                Some(json!({"title": title})),
                &[],
            )
            .await;
        assert_eq!(s, 201, "{chat}");
        let chat_id = chat["id"].as_str().unwrap().to_owned();
        let (s, b, _) = self
            .http(
                "POST",
                &format!("/chats/{chat_id}/members"),
                Some(owner),
                Some(json!({"user_id": member})),
                &[],
            )
            .await;
        assert_eq!(s, 201, "{b}");
        chat_id
    }

    /// A hub connection made with the API's connection token.
    pub async fn connect(&self, access: &str) -> super::client::Client {
        self.connect_to(&self.hub_ws, access).await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        drop(self.hub);
        drop(self.sink);
        self.more.lock().clear();
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.api.stop().await;
    }
}

/// `web/dist`, the web client `scripts/test` builds before the Rust tests.
pub fn web_dist() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/dist")
}
