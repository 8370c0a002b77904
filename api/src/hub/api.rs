//! The hub's server HTTP API, as the state-event consumer uses it.

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use crate::config::Hub;

pub struct HubApi {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl HubApi {
    pub fn new(c: &Hub) -> anyhow::Result<HubApi> {
        Ok(HubApi {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            url: c.api_url.trim_end_matches('/').to_owned(),
            key: c.api_key.clone(),
        })
    }

    /// Calls `method`; Centrifugo answers errors of a method as 200 with an `error` object.
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}/{method}", self.url))
            .header("X-API-Key", &self.key)
            .header("content-type", "application/json")
            .body(params.to_string())
            .send()
            .await
            .with_context(|| format!("hub api {method}"))?;
        let status = response.status();
        let body = response.bytes().await?;
        anyhow::ensure!(status.is_success(), "hub api {method}: status {status}");
        let value: Value = serde_json::from_slice(&body).context("hub api answer")?;
        if let Some(e) = value.get("error") {
            anyhow::bail!("hub api {method}: {e}");
        }
        Ok(value)
    }

    /// Ends `user`'s subscription to `channel` on every node, at once.
    pub async fn unsubscribe(&self, user: &str, channel: &str) -> anyhow::Result<()> {
        self.call("unsubscribe", json!({"user": user, "channel": channel}))
            .await
            .map(drop)
    }
}
