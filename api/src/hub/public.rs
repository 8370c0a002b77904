//! What a browser needs to reach the hub: its public WebSocket URL, served at `GET /config`,
//! so a page learns it from the API it was loaded from rather than from a constant.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::config::Hub;
use crate::state::AppState;

/// `hub.public_url`, or when it is empty the hub's own host from `hub.api_url`:
/// `http://h:8000/api` → `ws://h:8000/connection/websocket` (`https` → `wss`).
pub fn hub_url(hub: &Hub) -> String {
    if !hub.public_url.is_empty() {
        return hub.public_url.clone();
    }
    let (scheme, rest) = match hub.api_url.split_once("://") {
        Some(("https", rest)) => ("wss", rest),
        Some((_, rest)) => ("ws", rest),
        None => ("ws", hub.api_url.as_str()),
    };
    let host = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{host}/connection/websocket")
}

/// `GET /config`: public, for a page before it signs in.
pub async fn client_config(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"hub_url": hub_url(&s.config.hub)}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_url_is_the_configured_one_or_the_api_urls_host() {
        let mut hub = Hub {
            api_url: "https://hub.example.test:8443/api".into(),
            ..Hub::default()
        };
        assert_eq!(
            hub_url(&hub),
            "wss://hub.example.test:8443/connection/websocket"
        );
        hub.api_url = "http://127.0.0.1:8000/api".into();
        assert_eq!(hub_url(&hub), "ws://127.0.0.1:8000/connection/websocket");
        hub.public_url = "wss://chat.example.test/connection/websocket".into();
        assert_eq!(
            hub_url(&hub),
            "wss://chat.example.test/connection/websocket"
        );
    }
}
