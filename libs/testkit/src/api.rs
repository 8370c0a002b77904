//! The API as a client outside the process reaches it over HTTP: JSON calls, and a registered,
//! signed-in user. For tests that run the API as its own process or container.

use std::time::Duration;

use serde_json::{json, Value};

#[derive(Clone)]
pub struct ApiClient {
    pub base: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: impl Into<String>) -> ApiClient {
        ApiClient {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    /// A JSON call: status and body (Null when empty), or `None` when no answer came in 10 s
    /// (an API being killed, say). `key` is sent as `Idempotency-Key`.
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Option<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
        let mut r = self.request(method, path, bearer, key);
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        Self::answer(r).await
    }

    /// An upload as browsers send it (`multipart/form-data`, the part `file`), as
    /// [`ApiClient::try_call`] answers.
    pub async fn try_upload(
        &self,
        path: &str,
        bearer: &str,
        file: &[u8],
        key: Option<&str>,
    ) -> Option<(u16, Value)> {
        let boundary = crate::client::MULTIPART_BOUNDARY;
        let r = self
            .request(reqwest::Method::POST, path, Some(bearer), key)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(crate::client::multipart_file(file));
        Self::answer(r).await
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(10));
        if let Some(b) = bearer {
            r = r.header("authorization", format!("Bearer {b}"));
        }
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r
    }

    async fn answer(r: reqwest::RequestBuilder) -> Option<(u16, Value)> {
        let resp = r.send().await.ok()?;
        let status = resp.status().as_u16();
        let text = resp.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// `try_call` where an answer is expected.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.try_call(method, path, bearer, body, None)
            .await
            .unwrap_or_else(|| panic!("no answer from the API to {method} {path}"))
    }

    /// A registered, signed-in user: (id, access token).
    pub async fn user(&self, name: &str) -> (String, String) {
        let creds = json!({"username": name, "password": "password-1"});
        let (s, b) = self
            .call("POST", "/auth/register", None, Some(creds.clone()))
            .await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_str().expect("a user id").to_owned();
        let (s, b) = self.call("POST", "/auth/login", None, Some(creds)).await;
        assert_eq!(s, 200, "{b}");
        (id, b["access_token"].as_str().expect("a token").to_owned())
    }
}
