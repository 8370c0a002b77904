//! Reading a config: file (JSON, YAML or TOML) → environment overrides → typed [`Config`].
//!
//! Environment overrides use either Chorus names (`CHORUS_HUB__CLIENT__TOKEN__HMAC_SECRET_KEY`,
//! `__` between levels) or Centrifugo's (`CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY`), so a
//! Centrifugo deployment's environment keeps working. The environment is passed in rather
//! than read here, so tests never touch the process environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::Config;

const CHORUS_PREFIX: &str = "CHORUS_HUB__";
const CENTRIFUGO_PREFIX: &str = "CENTRIFUGO_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid {format}: {message}")]
    Parse {
        path: String,
        format: &'static str,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Toml,
}

impl Format {
    /// Picks the format from a file extension; JSON when there is none, as Centrifugo does.
    pub fn from_path(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("yaml" | "yml") => Format::Yaml,
            Some("toml") => Format::Toml,
            _ => Format::Json,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
        }
    }
}

/// A loaded config and what the operator should be told about it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// Keys that mean nothing to Chorus, as dotted paths.
    pub unknown_keys: Vec<String>,
    /// Environment variables that overrode the file.
    pub env_overrides: Vec<String>,
}

pub fn load_file(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    load_str(
        &text,
        Format::from_path(path),
        &path.display().to_string(),
        env,
    )
}

/// Parses config text; `origin` names it in error messages.
pub fn load_str(
    text: &str,
    format: Format,
    origin: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded, ConfigError> {
    let parse_err = |message: String| ConfigError::Parse {
        path: origin.to_owned(),
        format: format.name(),
        message,
    };
    let mut tree: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        match format {
            Format::Json => serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?,
            Format::Yaml => serde_yaml::from_str(text).map_err(|e| parse_err(e.to_string()))?,
            Format::Toml => toml::from_str(text).map_err(|e| parse_err(e.to_string()))?,
        }
    };
    if !tree.is_object() {
        return Err(parse_err("the top level must be an object".into()));
    }
    let env_overrides = apply_env(&mut tree, env)?;
    let mut unknown_keys = unknown_namespace_keys(&tree);
    let config = serde_ignored::deserialize(tree, |path| unknown_keys.push(path.to_string()))
        .map_err(|e: serde_json::Error| ConfigError::Invalid(e.to_string()))?;
    Ok(Loaded {
        config,
        unknown_keys,
        env_overrides,
    })
}

/// Namespace options are flattened into each namespace object, which hides unknown keys from
/// serde_ignored; they are checked against the option names here instead.
fn unknown_namespace_keys(tree: &Value) -> Vec<String> {
    let known = serde_json::to_value(super::ChannelOptions::default())
        .expect("invariant: options serialize");
    let known = known.as_object().expect("invariant: options are an object");
    let Some(namespaces) = tree
        .pointer("/channel/namespaces")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, ns) in namespaces.iter().enumerate() {
        for key in ns.as_object().into_iter().flat_map(|m| m.keys()) {
            if key != "name" && !known.contains_key(key) {
                out.push(format!("channel.namespaces.{i}.{key}"));
            }
        }
    }
    out
}

/// Every leaf key of the default config, as dotted path → default value (for its type).
fn known_leaves() -> BTreeMap<String, Value> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out);
                }
            }
            leaf => {
                out.insert(prefix.to_owned(), leaf.clone());
            }
        }
    }
    let defaults =
        serde_json::to_value(Config::default()).expect("invariant: the default config serializes");
    let mut out = BTreeMap::new();
    walk("", &defaults, &mut out);
    // A list item's keys, typed by its default, under index 0 (see `leaf_of`).
    let consumer = serde_json::to_value(super::consumers::Consumer::default())
        .expect("invariant: the default consumer serializes");
    walk("consumers.0", &consumer, &mut out);
    out
}

/// The known leaf `path` is an instance of: list indexes read as 0.
fn leaf_of(path: &str) -> String {
    path.split('.')
        .map(|p| if p.parse::<usize>().is_ok() { "0" } else { p })
        .collect::<Vec<_>>()
        .join(".")
}

fn apply_env(
    tree: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let leaves = known_leaves();
    let centrifugo_names: BTreeMap<String, &String> = leaves
        .keys()
        .map(|p| {
            (
                format!(
                    "{CENTRIFUGO_PREFIX}{}",
                    p.replace('.', "_").to_ascii_uppercase()
                ),
                p,
            )
        })
        .collect();
    let mut vars: Vec<(String, String)> = env.into_iter().collect();
    // Deterministic order, with Chorus names applied after (and so winning over) Centrifugo's.
    vars.sort_by_key(|(k, _)| (k.starts_with(CHORUS_PREFIX), k.clone()));
    let mut applied = Vec::new();
    for (var, raw) in vars {
        let path = if let Some(rest) = var.strip_prefix(CHORUS_PREFIX) {
            rest.split("__")
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>()
                .join(".")
        } else if let Some(path) = centrifugo_names.get(&var) {
            (*path).clone()
        } else {
            continue;
        };
        let value = typed_env_value(&raw, leaves.get(&leaf_of(&path))).map_err(|message| {
            ConfigError::Env {
                var: var.clone(),
                message,
            }
        })?;
        set_path(tree, &path, value).map_err(|message| ConfigError::Env {
            var: var.clone(),
            message,
        })?;
        applied.push(var);
    }
    Ok(applied)
}

/// Turns an environment string into JSON of the type the key expects.
fn typed_env_value(raw: &str, default: Option<&Value>) -> Result<Value, String> {
    match default {
        Some(Value::String(_)) => Ok(Value::String(raw.to_owned())),
        Some(Value::Bool(_)) => match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Value::Bool(true)),
            "0" | "false" | "no" | "off" | "" => Ok(Value::Bool(false)),
            _ => Err(format!("expected a boolean, got {raw:?}")),
        },
        Some(Value::Number(_)) => serde_json::from_str::<serde_json::Number>(raw)
            .map(Value::Number)
            .map_err(|_| format!("expected a number, got {raw:?}")),
        Some(Value::Array(_)) if !raw.trim_start().starts_with('[') => {
            // Centrifugo accepts space-separated lists for string arrays (e.g. allowed origins).
            Ok(Value::Array(
                raw.split_whitespace()
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ))
        }
        _ => Ok(serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))),
    }
}

/// Sets `path` in `tree`. A numeric part indexes an array the file already holds, so one
/// secret of a list item can come from the environment
/// (`CHORUS_HUB__CONSUMERS__0__KAFKA__SASL_PASSWORD`) while the rest stays in the file.
fn set_path(tree: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let mut node = tree;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        node = match node {
            Value::Array(items) => {
                let len = items.len();
                part.parse::<usize>()
                    .ok()
                    .and_then(|i| items.get_mut(i))
                    .ok_or_else(|| format!("{path}: no item {part} in a list of {len}"))?
            }
            Value::Object(map) => map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new())),
            _ => return Err(format!("{path}: a parent key is not an object")),
        };
    }
    let map = node
        .as_object_mut()
        .ok_or_else(|| format!("{path}: a parent key is not an object"))?;
    map.insert(parts[parts.len() - 1].to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    const JSON: &str = r#"{
        "http_server": {"port": 9001},
        "client": {"token": {"hmac_secret_key": "s3cret"}, "allowed_origins": ["http://localhost:*"], "ping_interval": "5s"},
        "http_api": {"key": "api"},
        "channel": {
            "without_namespace": {"presence": true},
            "namespaces": [{"name": "chat", "history_size": 10, "history_ttl": "300s", "force_recovery": true}]
        }
    }"#;

    #[test]
    fn json_yaml_and_toml_give_the_same_config() {
        let yaml = "http_server:\n  port: 9001\nclient:\n  token:\n    hmac_secret_key: s3cret\n  allowed_origins: ['http://localhost:*']\n  ping_interval: 5s\nhttp_api:\n  key: api\nchannel:\n  without_namespace:\n    presence: true\n  namespaces:\n    - name: chat\n      history_size: 10\n      history_ttl: 300s\n      force_recovery: true\n";
        let toml = "[http_server]\nport = 9001\n[client]\nallowed_origins = ['http://localhost:*']\nping_interval = '5s'\n[client.token]\nhmac_secret_key = 's3cret'\n[http_api]\nkey = 'api'\n[channel.without_namespace]\npresence = true\n[[channel.namespaces]]\nname = 'chat'\nhistory_size = 10\nhistory_ttl = '300s'\nforce_recovery = true\n";
        for (text, format) in [
            (JSON, Format::Json),
            (yaml, Format::Yaml),
            (toml, Format::Toml),
        ] {
            let loaded = load_str(text, format, "test", no_env()).unwrap();
            let c = loaded.config;
            assert!(
                loaded.unknown_keys.is_empty(),
                "{format:?}: {:?}",
                loaded.unknown_keys
            );
            assert_eq!(c.http_server.port, 9001);
            assert_eq!(c.client.token.hmac_secret_key, "s3cret");
            assert_eq!(c.client.ping_interval.0, Duration::from_secs(5));
            assert!(c.channel.without_namespace.presence);
            let chat = c.channel_options("chat").unwrap();
            assert_eq!(
                (chat.history_size, chat.history_ttl.0),
                (10, Duration::from_secs(300))
            );
            assert!(chat.force_recovery);
            assert!(c.channel_options("nope").is_none());
        }
    }

    #[test]
    fn unknown_keys_are_reported_with_their_path() {
        let loaded = load_str(r#"{"client": {"tokn": {}}, "bogus": 1, "channel": {"namespaces": [{"name": "a1", "presense": true}]}}"#, Format::Json, "t", no_env()).unwrap();
        let mut keys = loaded.unknown_keys;
        keys.sort();
        assert_eq!(
            keys,
            vec!["bogus", "channel.namespaces.0.presense", "client.tokn"]
        );
    }

    #[test]
    fn environment_overrides_the_file_in_both_spellings() {
        let env = vec![
            (
                "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY".to_owned(),
                "from-centrifugo-env".to_owned(),
            ),
            (
                "CHORUS_HUB__HTTP_SERVER__PORT".to_owned(),
                "7000".to_owned(),
            ),
            ("CENTRIFUGO_CLIENT_INSECURE".to_owned(), "true".to_owned()),
            (
                "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS".to_owned(),
                "http://a http://b".to_owned(),
            ),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let loaded = load_str(JSON, Format::Json, "t", env).unwrap();
        assert_eq!(
            loaded.config.client.token.hmac_secret_key,
            "from-centrifugo-env"
        );
        assert_eq!(loaded.config.http_server.port, 7000);
        assert!(loaded.config.client.insecure);
        assert_eq!(
            loaded.config.client.allowed_origins,
            vec!["http://a", "http://b"]
        );
        assert_eq!(loaded.env_overrides.len(), 4);
    }

    #[test]
    fn the_environment_reaches_into_a_list_item() {
        let file = r#"{"consumers": [{"name": "chat", "type": "kafka",
            "kafka": {"brokers": ["k:9092"], "topics": ["t"], "consumer_group": "g",
                      "sasl_mechanism": "plain", "sasl_user": "u"}}]}"#;
        let env = vec![(
            "CHORUS_HUB__CONSUMERS__0__KAFKA__SASL_PASSWORD".to_owned(),
            "from-a-secret".to_owned(),
        )];
        let loaded = load_str(file, Format::Json, "test", env).unwrap();
        assert_eq!(
            loaded.config.consumers[0].kafka.sasl_password,
            "from-a-secret"
        );
        // A password of digits stays a string.
        let digits = vec![(
            "CHORUS_HUB__CONSUMERS__0__KAFKA__SASL_PASSWORD".to_owned(),
            "123456".to_owned(),
        )];
        let loaded = load_str(file, Format::Json, "test", digits).unwrap();
        assert_eq!(loaded.config.consumers[0].kafka.sasl_password, "123456");
        assert_eq!(loaded.config.consumers[0].kafka.sasl_user, "u");
        let err = load_str(
            file,
            Format::Json,
            "test",
            vec![("CHORUS_HUB__CONSUMERS__3__NAME".to_owned(), "x".to_owned())],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("no item 3 in a list of 1"),
            "{err}"
        );
    }

    #[test]
    fn bad_input_gets_a_precise_error() {
        let err = load_str(
            "{\"http_server\": {\"port\": 99999}}",
            Format::Json,
            "cfg.json",
            no_env(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid config"), "{err}");
        let err = load_str("{nope", Format::Json, "cfg.json", no_env()).unwrap_err();
        assert!(
            err.to_string().contains("cfg.json is not valid JSON"),
            "{err}"
        );
        let err = load_str(
            "{}",
            Format::Json,
            "t",
            vec![("CHORUS_HUB__HTTP_SERVER__PORT".into(), "abc".into())],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("CHORUS_HUB__HTTP_SERVER__PORT"),
            "{err}"
        );
        let err = load_str(
            r#"{"client": {"ping_interval": "5 parsecs"}}"#,
            Format::Json,
            "t",
            no_env(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown unit"), "{err}");
    }
}
