//! Config layering every service shares: serde defaults, then an optional TOML file, then
//! `CHORUS_<SERVICE>__SECTION__KEY` environment overrides, so one binary reads
//! `CHORUS_SINK__DYNAMODB__ENDPOINT=http://127.0.0.1:8100` the way another reads its own. Also
//! the `[log]` and `[http]` sections the worker services have alike.

use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// `text` or `json`.
    pub format: String,
    /// A level for the service's own logs (`info`), or with a `=` a whole tracing filter
    /// (`chorus_sink=debug,rdkafka=info`); see `process::init_logging`.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Log {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid("log.format is text or json".into()));
        }
        Ok(())
    }
}

/// Where a worker service serves `/health` and `/metrics`; each service's `Config::default`
/// names its own port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub address: String,
}

impl Http {
    pub fn at(address: &str) -> Self {
        Http {
            address: address.to_owned(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid("http.address must be ip:port".into()));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Any service's config from its layers: serde defaults, then the TOML file (if any), then
/// `<prefix>SECTION__KEY` variables from `env`. Values under a section named in
/// `string_sections` stay strings (librdkafka properties are strings whatever they look like).
/// The API reads its config this way too.
pub fn load_layers<T: serde::de::DeserializeOwned>(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    prefix: &str,
    string_sections: &[&str],
) -> Result<T, ConfigError> {
    let mut root = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse(format!("{}: {e}", p.display())))?
        }
        None => toml::Table::new(),
    };
    for (name, value) in env {
        let Some(key) = name.strip_prefix(prefix) else {
            continue;
        };
        let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
        let value = if path.iter().any(|p| string_sections.contains(&p.as_str())) {
            toml::Value::String(value)
        } else {
            env_value(&value)
        };
        set_path(&mut root, &path, value)
            .map_err(|e| ConfigError::Parse(format!("{name}: {e}")))?;
    }
    T::deserialize(toml::Value::Table(root)).map_err(|e| ConfigError::Parse(e.to_string()))
}

/// An environment value as TOML when it reads as a number or a boolean, else a string.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(n) = raw.parse::<i64>() {
        return toml::Value::Integer(n);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut at = table;
    for p in parents {
        at = at
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{p} is not a section"))?;
    }
    at.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        log: Log,
        http: Http,
        #[serde(default)]
        kafka: std::collections::BTreeMap<String, toml::Value>,
    }

    #[test]
    fn the_environment_overrides_the_file_and_string_sections_stay_strings() {
        let dir = std::env::temp_dir().join(format!("chorus-runtime-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("x.toml");
        std::fs::write(
            &file,
            "[http]\naddress = \"127.0.0.1:1\"\n[log]\nlevel = \"debug\"\n",
        )
        .expect("write");
        let env = [
            ("CHORUS_X__HTTP__ADDRESS", "127.0.0.1:2"),
            ("CHORUS_X__KAFKA__LIBRDKAFKA__FETCH.MIN.BYTES", "10"),
            ("CHORUS_Y__LOG__LEVEL", "warn"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let s: Sample =
            load_layers(Some(&file), env, "CHORUS_X__", &["librdkafka"]).expect("loads");
        assert_eq!(s.http.address, "127.0.0.1:2");
        assert_eq!(s.log.level, "debug");
        assert_eq!(
            s.kafka["librdkafka"]["fetch.min.bytes"],
            toml::Value::String("10".into())
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_bad_file_or_key_is_named() {
        let e = load_layers::<Sample>(None, [], "CHORUS_X__", &[]).expect_err("no http");
        assert!(e.to_string().contains("http"), "{e}");
        let e = load_layers::<Sample>(
            Some(Path::new("/nonexistent/x.toml")),
            [],
            "CHORUS_X__",
            &[],
        )
        .expect_err("no file");
        assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
    }
}
