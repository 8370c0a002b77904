//! The API's configuration: defaults overridden by `CHORUS_API__*` environment variables,
//! validated before anything binds. (A TOML file comes with the rest of the API.)

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// `postgres://` URL.
    pub database_url: String,
    /// `ip:port` for HTTP.
    pub address: String,
    /// HMAC secret of access tokens (HS256); at least 32 bytes.
    pub jwt_secret: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How long a rotated refresh token still rotates (two tabs refreshing at once) before a
    /// reuse counts as theft.
    pub refresh_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "postgres://postgres@127.0.0.1:5432/chorus".into(),
            address: "127.0.0.1:8080".into(),
            jwt_secret: String::new(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid config: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Defaults, then `CHORUS_API__DATABASE_URL`, `__ADDRESS`, `__JWT_SECRET`,
    /// `__ACCESS_TTL_SECS`, `__REFRESH_TTL_SECS`, `__REFRESH_GRACE_SECS` from `env`.
    pub fn from_env(
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("CHORUS_API__") else {
                continue;
            };
            let secs = || {
                value
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| ConfigError(format!("{name} must be a number of seconds")))
            };
            match key {
                "DATABASE_URL" => c.database_url = value.clone(),
                "ADDRESS" => c.address = value.clone(),
                "JWT_SECRET" => c.jwt_secret = value.clone(),
                "ACCESS_TTL_SECS" => c.access_ttl = secs()?,
                "REFRESH_TTL_SECS" => c.refresh_ttl = secs()?,
                "REFRESH_GRACE_SECS" => c.refresh_grace = secs()?,
                _ => return Err(ConfigError(format!("unknown setting {name}"))),
            }
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.jwt_secret.len() < 32 {
            return Err(ConfigError(
                "CHORUS_API__JWT_SECRET must be at least 32 bytes".into(),
            ));
        }
        if self.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError("CHORUS_API__ADDRESS must be ip:port".into()));
        }
        if !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            return Err(ConfigError(
                "CHORUS_API__DATABASE_URL must be a postgres:// URL".into(),
            ));
        }
        if self.access_ttl.is_zero() || self.refresh_ttl <= self.access_ttl {
            return Err(ConfigError(
                "access_ttl must be positive and shorter than refresh_ttl".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_sets_and_checks_every_key() {
        let secret = "s".repeat(32);
        let c = Config::from_env(env(&[
            ("CHORUS_API__JWT_SECRET", &secret),
            ("CHORUS_API__REFRESH_GRACE_SECS", "3"),
            ("PATH", "/bin"),
        ]))
        .expect("valid");
        assert_eq!(c.refresh_grace, Duration::from_secs(3));
        let short = Config::from_env(env(&[("CHORUS_API__JWT_SECRET", "short")]))
            .expect_err("short secret");
        assert!(short.to_string().contains("JWT_SECRET"));
        let unknown =
            Config::from_env(env(&[("CHORUS_API__JWT_SECRETS", &secret)])).expect_err("typo");
        assert!(unknown.to_string().contains("JWT_SECRETS"));
        let bad = Config::from_env(env(&[
            ("CHORUS_API__JWT_SECRET", &secret),
            ("CHORUS_API__ACCESS_TTL_SECS", "soon"),
        ]))
        .expect_err("not a number");
        assert!(bad.to_string().contains("ACCESS_TTL_SECS"));
    }
}
