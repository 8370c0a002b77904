//! `chorus-hub genconfig`: a starter config with fresh secrets, like `centrifugo genconfig`.

use std::path::Path;

use crate::config::{Format, HumanDuration, Namespace};
use crate::Config;

/// A config a newcomer can run at once: random token secret and API key, an open `chat`
/// namespace with presence, join/leave, history and recovery. It listens on loopback only:
/// exposing the hub is a decision (`http_server.address`), not a default.
pub fn starter() -> Config {
    let mut c = Config::default();
    c.http_server.address = "127.0.0.1".into();
    c.client.token.hmac_secret_key = uuid::Uuid::new_v4().simple().to_string();
    c.http_api.key = uuid::Uuid::new_v4().simple().to_string();
    c.client.allowed_origins = vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()];
    let mut chat = Namespace {
        name: "chat".into(),
        ..Default::default()
    };
    let o = &mut chat.options;
    o.presence = true;
    o.join_leave = true;
    o.force_push_join_leave = true;
    o.history_size = 100;
    o.history_ttl = HumanDuration::secs(3600);
    o.force_recovery = true;
    o.allow_subscribe_for_client = true;
    o.allow_publish_for_subscriber = true;
    o.allow_presence_for_subscriber = true;
    o.allow_history_for_subscriber = true;
    c.channel.namespaces.push(chat);
    c
}

/// Renders a config in the format its file name implies.
pub fn render(config: &Config, path: &Path) -> anyhow::Result<String> {
    Ok(match Format::from_path(path) {
        Format::Json => serde_json::to_string_pretty(config)? + "\n",
        Format::Yaml => serde_yaml::to_string(config)?,
        Format::Toml => toml::to_string_pretty(config)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, validate::validate};

    #[test]
    fn starter_config_round_trips_and_validates_in_every_format() {
        let c = starter();
        assert_eq!(
            c.http_server.address, "127.0.0.1",
            "loopback unless told otherwise"
        );
        for (name, format) in [
            ("c.json", Format::Json),
            ("c.yaml", Format::Yaml),
            ("c.toml", Format::Toml),
        ] {
            let text = render(&c, Path::new(name)).unwrap();
            let loaded = load_str(&text, format, name, Vec::new()).unwrap();
            assert!(
                loaded.unknown_keys.is_empty(),
                "{name}: {:?}",
                loaded.unknown_keys
            );
            assert_eq!(loaded.config.http_api.key, c.http_api.key);
            assert!(validate(&loaded.config).unwrap().is_empty());
        }
    }
}
