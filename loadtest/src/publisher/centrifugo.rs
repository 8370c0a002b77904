//! The Chorus/Centrifugo server API: `POST {api}/api/publish` with `X-API-Key`.

use async_trait::async_trait;

use super::{excerpt, PublishError, Publisher};

pub struct CentrifugoApi {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl CentrifugoApi {
    /// `base` is the server's HTTP root, e.g. `http://127.0.0.1:8000`.
    pub fn new(http: reqwest::Client, base: &str, key: String) -> Self {
        Self {
            http,
            url: format!("{}/api/publish", base.trim_end_matches('/')),
            key,
        }
    }
}

#[async_trait]
impl Publisher for CentrifugoApi {
    async fn publish(&self, channel: &str, data: &str) -> Result<(), PublishError> {
        let channel = serde_json::to_string(channel).expect("invariant: a str serializes");
        let body = format!(r#"{{"channel":{channel},"data":{data}}}"#);
        let resp = self
            .http
            .post(&self.url)
            .header("X-API-Key", &self.key)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        // Centrifugo reports method errors in a 200 body.
        if status != 200 || text.contains(r#""error""#) {
            return Err(PublishError::Rejected {
                status,
                body: excerpt(&text),
            });
        }
        Ok(())
    }
}
