//! Checks a config before anything is bound, so a bad value stops the hub with a precise message.

use super::{ChannelOptions, Config, ConfigError};

/// Returns the warnings to log, or the first set of errors as one message.
pub fn validate(config: &Config) -> Result<Vec<String>, ConfigError> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    match config.engine.kind.as_str() {
        "memory" => {}
        "redis" => {
            let r = &config.engine.redis;
            if let Err(e) = r.shards() {
                errors.push(e);
            }
            if r.topology() == super::Topology::Sentinel && r.sentinel_master_name.is_empty() {
                errors.push(
                    "engine.redis.sentinel_master_name must name the master Sentinel watches"
                        .into(),
                );
            }
            if r.prefix.contains(['{', '}']) {
                // Keys of one channel share a {hash tag}; a brace in the prefix would move it.
                errors.push("engine.redis.prefix must not contain { or }".into());
            }
            if r.prefix.is_empty() {
                errors.push("engine.redis.prefix must not be empty".into());
            }
            if r.io_timeout.is_zero() || r.connect_timeout.is_zero() {
                errors.push("engine.redis.io_timeout and connect_timeout must be positive".into());
            }
            if config.client.presence_update_interval >= r.presence_ttl {
                errors.push(
                    "client.presence_update_interval must be shorter than engine.redis.presence_ttl"
                        .into(),
                );
            }
        }
        other => errors.push(format!("engine.type {other:?} must be memory or redis")),
    }
    if !matches!(
        config.log.level.as_str(),
        "none" | "trace" | "debug" | "info" | "warn" | "error"
    ) {
        errors.push(format!(
            "log.level {:?} must be one of none, trace, debug, info, warn, error",
            config.log.level
        ));
    }
    if !matches!(config.log.format.as_str(), "text" | "json") {
        errors.push(format!(
            "log.format {:?} must be text or json",
            config.log.format
        ));
    }
    let c = &config.client;
    if c.ping_interval.is_zero() || c.pong_timeout.is_zero() {
        errors.push("client.ping_interval and client.pong_timeout must be positive".into());
    } else if c.pong_timeout >= c.ping_interval {
        errors.push("client.pong_timeout must be shorter than client.ping_interval".into());
    }
    if c.queue_max_size == 0 {
        errors.push("client.queue_max_size must be positive".into());
    }
    if c.max_messages_in_frame == 0 || c.max_messages_in_frame < -1 {
        errors.push("client.max_messages_in_frame must be positive, or -1 for no limit".into());
    }
    if c.channel_limit == 0 {
        errors.push("client.channel_limit must be positive".into());
    }
    if config.websocket.message_size_limit == 0 || config.websocket.read_buffer_size == 0 {
        errors.push(
            "websocket.message_size_limit and websocket.read_buffer_size must be positive".into(),
        );
    }
    for (key, pem, rsa) in [
        ("client.token.rsa_public_key", &c.token.rsa_public_key, true),
        (
            "client.token.ecdsa_public_key",
            &c.token.ecdsa_public_key,
            false,
        ),
        (
            "client.subscription_token.rsa_public_key",
            &c.subscription_token.rsa_public_key,
            true,
        ),
        (
            "client.subscription_token.ecdsa_public_key",
            &c.subscription_token.ecdsa_public_key,
            false,
        ),
    ] {
        if pem.is_empty() {
            continue;
        }
        let parsed = if rsa {
            jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).map(drop)
        } else {
            jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()).map(drop)
        };
        if let Err(e) = parsed {
            errors.push(format!("{key} is not a valid PEM public key: {e}"));
        }
    }
    let t = &c.token;
    if t.hmac_secret_key.is_empty()
        && t.rsa_public_key.is_empty()
        && t.ecdsa_public_key.is_empty()
        && !c.insecure
    {
        warnings.push("no client.token key is set: every connection token will be refused".into());
    }
    if config.http_api.key.is_empty() && !config.http_api.insecure {
        warnings.push("http_api.key is empty: the server API refuses every request".into());
    }

    let mut seen = std::collections::HashSet::new();
    check_options(
        "channel.without_namespace",
        &config.channel.without_namespace,
        &mut errors,
    );
    for (i, ns) in config.channel.namespaces.iter().enumerate() {
        let valid_name = ns.name.len() >= 2
            && ns
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
        if !valid_name {
            errors.push(format!(
                "channel.namespaces[{i}].name {:?} must be 2+ characters of letters, digits, '-', '_' or '.'",
                ns.name
            ));
        }
        if !seen.insert(ns.name.as_str()) {
            errors.push(format!(
                "channel.namespaces[{i}].name {:?} is defined twice",
                ns.name
            ));
        }
        check_options(
            &format!("channel.namespaces[{i}] ({})", ns.name),
            &ns.options,
            &mut errors,
        );
    }

    check_proxies(config, &mut errors);

    let mut names = std::collections::HashSet::new();
    let mut chat_consumers = 0;
    for (i, c) in config.consumers.iter().enumerate() {
        super::consumers::check(i, c, &mut errors);
        if !names.insert(c.name.as_str()) {
            errors.push(format!("consumers[{i}].name {:?} is defined twice", c.name));
        }
        if c.enabled && c.kafka.chat_event_mode.enabled {
            chat_consumers += 1;
            if c.kafka.topics.len() != 1 {
                errors.push(format!(
                    "consumers[{i}] ({}): chat_event_mode reads exactly one topic (its name is the chat streams' epoch)",
                    c.name
                ));
            }
            match config.channel_options("chat") {
                None => errors.push(format!(
                    "consumers[{i}] ({}): chat_event_mode needs a channel namespace \"chat\"",
                    c.name
                )),
                Some(o) => {
                    // The chat streams are Kafka's records positioned by their offsets: a client
                    // publication would be a message nobody sent through the API, never stored,
                    // and unordered with the others. Refused here, not left to the engine.
                    if o.allow_publish_for_client
                        || o.allow_publish_for_subscriber
                        || o.allow_publish_for_anonymous
                        || o.publish_proxy_enabled
                    {
                        errors.push(format!(
                            "consumers[{i}] ({}): namespace \"chat\" is fed by chat_event_mode, so clients may not publish there: turn off allow_publish_for_client, allow_publish_for_subscriber, allow_publish_for_anonymous and publish_proxy_enabled",
                            c.name
                        ));
                    }
                    if !o.history_enabled() {
                        warnings.push(format!(
                            "consumers[{i}] ({}): namespace \"chat\" keeps no history, so clients cannot recover chat events",
                            c.name
                        ));
                    }
                }
            }
        }
    }

    if chat_consumers > 1 {
        errors.push("only one consumer may have chat_event_mode enabled".into());
    }

    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(ConfigError::Invalid(errors.join("; ")))
    }
}

fn check_options(at: &str, o: &ChannelOptions, errors: &mut Vec<String>) {
    if !o.channel_regex.is_empty() {
        if let Err(e) = regex::Regex::new(&o.channel_regex) {
            errors.push(format!("{at}: channel_regex: {e}"));
        }
    }
    for t in &o.allowed_delta_types {
        if t != "fossil" {
            errors.push(format!(
                "{at}: allowed_delta_types: {t:?} is not a delta type (fossil)"
            ));
        }
    }
    if (o.history_size > 0) == o.history_ttl.is_zero() {
        errors.push(format!(
            "{at}: history_size and history_ttl must be set together"
        ));
    }
    let needs_history =
        o.force_recovery || o.allow_recovery || o.force_positioning || o.allow_positioning;
    if needs_history && !o.history_enabled() {
        errors.push(format!(
            "{at}: recovery and positioning need history_size and history_ttl"
        ));
    }
    if o.force_push_join_leave && !o.join_leave {
        errors.push(format!("{at}: force_push_join_leave needs join_leave"));
    }
}

/// Every configured proxy endpoint is an http(s) URL with a positive timeout, named proxies
/// are named once, and each `*_proxy_enabled` points at a proxy that exists.
fn check_proxies(config: &Config, errors: &mut Vec<String>) {
    use super::{ProxyEndpoint, DEFAULT_PROXY};
    let endpoint = |path: &str, p: &ProxyEndpoint, errors: &mut Vec<String>| {
        if p.endpoint.is_empty() {
            return;
        }
        if !p.endpoint.starts_with("http://") && !p.endpoint.starts_with("https://") {
            errors.push(format!(
                "{path}.endpoint {:?} must be an http:// or https:// URL",
                p.endpoint
            ));
        }
        if p.timeout.is_zero() {
            errors.push(format!("{path}.timeout must be positive"));
        }
    };
    let cp = &config.client.proxy;
    for (path, t) in [
        ("client.proxy.connect", &cp.connect),
        ("client.proxy.refresh", &cp.refresh),
    ] {
        endpoint(path, &t.proxy, errors);
        if t.enabled && t.proxy.endpoint.is_empty() {
            errors.push(format!("{path}.enabled needs {path}.endpoint"));
        }
    }
    let ch = &config.channel.proxy;
    endpoint("channel.proxy.subscribe", &ch.subscribe, errors);
    endpoint("channel.proxy.publish", &ch.publish, errors);
    endpoint("channel.proxy.sub_refresh", &ch.sub_refresh, errors);
    endpoint("rpc.proxy", &config.rpc.proxy, errors);
    let mut named = std::collections::HashSet::new();
    for (i, n) in config.proxies.iter().enumerate() {
        endpoint(&format!("proxies[{i}]"), &n.proxy, errors);
        if n.name.is_empty() || n.name == DEFAULT_PROXY || n.proxy.endpoint.is_empty() {
            errors.push(format!(
                "proxies[{i}] needs a name (not {DEFAULT_PROXY:?}) and an endpoint"
            ));
        } else if !named.insert(n.name.as_str()) {
            errors.push(format!("proxies[{i}].name {:?} is defined twice", n.name));
        }
    }
    // (enabled, proxy name, the kind's default endpoint, what to call it)
    let exists = |name: &str, default: &ProxyEndpoint| {
        if name.is_empty() || name == DEFAULT_PROXY {
            !default.endpoint.is_empty()
        } else {
            config.proxies.iter().any(|n| n.name == name)
        }
    };
    let namespaces = std::iter::once((
        "channel.without_namespace".to_string(),
        &config.channel.without_namespace,
    ))
    .chain(
        config
            .channel
            .namespaces
            .iter()
            .map(|n| (format!("channel.namespaces ({})", n.name), &n.options)),
    );
    for (path, o) in namespaces {
        for (enabled, name, default, kind) in [
            (
                o.subscribe_proxy_enabled,
                &o.subscribe_proxy_name,
                &ch.subscribe,
                "subscribe",
            ),
            (
                o.publish_proxy_enabled,
                &o.publish_proxy_name,
                &ch.publish,
                "publish",
            ),
            (
                o.sub_refresh_proxy_enabled,
                &o.sub_refresh_proxy_name,
                &ch.sub_refresh,
                "sub_refresh",
            ),
        ] {
            if enabled && !exists(name, default) {
                errors.push(format!(
                    "{path}: {kind}_proxy_enabled needs channel.proxy.{kind}.endpoint or a proxies[] entry named {name:?}"
                ));
            }
        }
    }
    let rpc = &config.rpc;
    let rpc_namespaces =
        std::iter::once(("rpc.without_namespace".to_string(), &rpc.without_namespace)).chain(
            rpc.namespaces
                .iter()
                .map(|n| (format!("rpc.namespaces ({})", n.name), &n.options)),
        );
    for (path, o) in rpc_namespaces {
        if o.proxy_enabled && !exists(&o.proxy_name, &rpc.proxy) {
            errors.push(format!(
                "{path}: proxy_enabled needs rpc.proxy.endpoint or a proxies[] entry named {:?}",
                o.proxy_name
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, Format};

    fn check(json: &str) -> Result<Vec<String>, ConfigError> {
        validate(
            &load_str(json, Format::Json, "t", Vec::new())
                .unwrap()
                .config,
        )
    }

    #[test]
    fn a_sane_config_passes() {
        let w =
            check(r#"{"client": {"token": {"hmac_secret_key": "k"}}, "http_api": {"key": "a"}}"#)
                .unwrap();
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn precise_messages_for_bad_values() {
        let cases = [
            (
                r#"{"channel": {"namespaces": [{"name": "x"}]}}"#,
                "must be 2+ characters",
            ),
            (
                r#"{"channel": {"namespaces": [{"name": "ab"}, {"name": "ab"}]}}"#,
                "defined twice",
            ),
            (
                r#"{"channel": {"without_namespace": {"history_size": 10}}}"#,
                "must be set together",
            ),
            (
                r#"{"channel": {"without_namespace": {"force_recovery": true}}}"#,
                "need history_size",
            ),
            (
                r#"{"channel": {"namespaces": [{"name": "chat", "subscribe_proxy_enabled": true}]}}"#,
                "needs channel.proxy.subscribe.endpoint",
            ),
            (
                r#"{"channel": {"namespaces": [{"name": "chat", "publish_proxy_enabled": true, "publish_proxy_name": "nope"}]}}"#,
                "a proxies[] entry named \"nope\"",
            ),
            (
                r#"{"channel": {"namespaces": [{"name": "ab", "channel_regex": "^[a-z"}]}}"#,
                "channel_regex",
            ),
            (
                r#"{"client": {"proxy": {"connect": {"enabled": true}}}}"#,
                "client.proxy.connect.enabled needs client.proxy.connect.endpoint",
            ),
            (
                r#"{"rpc": {"without_namespace": {"proxy_enabled": true}}}"#,
                "proxy_enabled needs rpc.proxy.endpoint",
            ),
            (
                r#"{"proxies": [{"name": "a", "endpoint": "http://x/a"}, {"name": "a", "endpoint": "http://x/b"}]}"#,
                "defined twice",
            ),
            (
                r#"{"channel": {"proxy": {"subscribe": {"endpoint": "localhost:3000/x"}}}}"#,
                "must be an http:// or https:// URL",
            ),
            (
                r#"{"engine": {"type": "tarantool"}}"#,
                "must be memory or redis",
            ),
            (
                r#"{"engine": {"type": "redis", "redis": {"address": "tcp://localhost:6379"}}}"#,
                "must be host:port or a redis:// URL",
            ),
            (
                r#"{"engine": {"type": "redis", "redis": {"sentinel_address": ["127.0.0.1:26379"]}}}"#,
                "sentinel_master_name",
            ),
            (
                r#"{"engine": {"type": "redis", "redis": {"prefix": "a{b}"}}}"#,
                "must not contain { or }",
            ),
            (
                r#"{"consumers": [{"enabled": true, "name": "k", "type": "kafka"}]}"#,
                "2+ latin letters",
            ),
            (
                r#"{"consumers": [{"enabled": true, "name": "kafka1", "type": "kafka"}]}"#,
                "kafka.brokers is required",
            ),
            (
                r#"{"consumers": [{"enabled": true, "name": "pg", "type": "postgresql"}]}"#,
                "only \"kafka\"",
            ),
            (
                r#"{"consumers": [{"enabled": true, "name": "chats", "type": "kafka", "kafka": {"brokers": ["b:9092"], "topics": ["t"], "consumer_group": "g", "chat_event_mode": {"enabled": true}}}]}"#,
                "needs a channel namespace \"chat\"",
            ),
            (
                r#"{"channel": {"namespaces": [{"name": "chat", "allow_publish_for_subscriber": true}]}, "consumers": [{"enabled": true, "name": "chats", "type": "kafka", "kafka": {"brokers": ["b:9092"], "topics": ["t"], "consumer_group": "g", "chat_event_mode": {"enabled": true}}}]}"#,
                "clients may not publish there",
            ),
            (
                r#"{"consumers": [{"enabled": true, "name": "tls", "type": "kafka", "kafka": {"brokers": ["b:9092"], "topics": ["t"], "consumer_group": "g", "tls": {"enabled": true}}}]}"#,
                "kafka.tls is not supported yet",
            ),
            (
                r#"{"client": {"token": {"rsa_public_key": "garbage"}}}"#,
                "not a valid PEM",
            ),
            (
                r#"{"client": {"ping_interval": "5s", "pong_timeout": "10s"}}"#,
                "pong_timeout must be shorter",
            ),
        ];
        for (json, want) in cases {
            let err = check(json).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn missing_keys_are_warned_about() {
        let w = check("{}").unwrap();
        assert!(w.iter().any(|w| w.contains("client.token")));
        assert!(w.iter().any(|w| w.contains("http_api.key")));
    }
}
