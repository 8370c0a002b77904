//! The Chorus/Centrifugo server API: `POST {api}/api/publish` with `X-API-Key`.

use async_trait::async_trait;

use super::{excerpt, PublishError, Publisher};

pub struct CentrifugoApi {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl CentrifugoApi {
    /// `base` is the server's HTTP root, `http://127.0.0.1:8000`, or its API root,
    /// `http://127.0.0.1:8000/api`; both mean the same server.
    pub fn new(http: reqwest::Client, base: &str, key: String) -> Self {
        let root = base.trim_end_matches('/');
        let root = root.strip_suffix("/api").unwrap_or(root);
        Self {
            http,
            url: format!("{root}/api/publish"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_root_and_the_api_root_name_the_same_endpoint() {
        for base in [
            "http://h:8000",
            "http://h:8000/",
            "http://h:8000/api",
            "http://h:8000/api/",
        ] {
            let api = CentrifugoApi::new(reqwest::Client::new(), base, "k".into());
            assert_eq!(api.url, "http://h:8000/api/publish", "{base}");
        }
    }
}
