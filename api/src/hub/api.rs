//! The hub's server HTTP API, as the API uses it: the removals' cut-off and its retry by the
//! state-event consumer, and the end of a sign-in session's hub access.

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use crate::config::Hub;

/// Centrifugo's "force reconnect": the SDK reconnects at once.
const FORCE_RECONNECT: u16 = 3011;

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

    /// Withdraws every hub token of `user` issued before `issued_before` (unix seconds; kept
    /// until `expire_at`, when they have all expired anyway), then closes the user's
    /// connections with a code that reconnects: a session still signed in gets a new token
    /// from `getToken` and is back at once, a signed-out one is refused.
    pub async fn end_user_tokens(
        &self,
        user: &str,
        issued_before: u64,
        expire_at: u64,
    ) -> anyhow::Result<()> {
        let commands = json!([
            {"invalidate_user_tokens": {"user": user, "issued_before": issued_before, "expire_at": expire_at}},
            {"disconnect": {"user": user, "disconnect": {"code": FORCE_RECONNECT, "reason": "session ended"}}},
        ]);
        let answer = self.call("batch", json!({ "commands": commands })).await?;
        let replies = answer["replies"]
            .as_array()
            .context("hub api batch: no replies")?;
        anyhow::ensure!(
            replies.len() == 2,
            "hub api batch: {} replies to 2 commands",
            replies.len()
        );
        if let Some(e) = replies.iter().find_map(|r| r.get("error")) {
            anyhow::bail!("hub api: {e}");
        }
        Ok(())
    }

    /// Ends each user's subscription to each channel on every hub node, in one `batch`
    /// request: `Ok` only when the hub answered every unsubscribe without an error.
    pub async fn unsubscribe(&self, users: &[String], channels: &[String]) -> anyhow::Result<()> {
        let commands: Vec<Value> = users
            .iter()
            .flat_map(|u| {
                channels
                    .iter()
                    .map(move |c| json!({"unsubscribe": {"user": u, "channel": c}}))
            })
            .collect();
        if commands.is_empty() {
            return Ok(());
        }
        let answer = self.call("batch", json!({ "commands": commands })).await?;
        let replies = answer["replies"]
            .as_array()
            .context("hub api batch: no replies")?;
        anyhow::ensure!(
            replies.len() == commands.len(),
            "hub api batch: {} replies to {} unsubscribes",
            replies.len(),
            commands.len()
        );
        if let Some(e) = replies.iter().find_map(|r| r.get("error")) {
            anyhow::bail!("hub api unsubscribe: {e}");
        }
        Ok(())
    }
}
