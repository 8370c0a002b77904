//! Centrifugo's HTTP proxies: the hub asks the application backend instead of deciding
//! itself. `connect` and `refresh` (`client.proxy`), `subscribe`, `publish` and `sub_refresh`
//! (`channel.proxy`, per namespace `*_proxy_enabled`), `rpc` (`rpc.proxy`, per RPC namespace
//! `proxy_enabled`), and named proxies (`proxies[]`) any of them may point at instead.
//!
//! [`HttpProxy::call`] is the one way a proxy is called: a JSON POST with Centrifugo's request
//! shape, the configured static headers and the client's own listed `http_headers` (its
//! `Cookie`, say), answered by `{"result": ...}`, `{"error": {code, message}}` or
//! `{"disconnect": {code, reason}}`. Anything else (the backend down, slower than `timeout`,
//! a non-2xx status, a body of another shape) is a [`ProxyFailure`]: callers turn it into a
//! temporary error, never into a grant. What each proxy sends and reads is in [`calls`].

pub mod calls;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName};
use chorus_protocol::codes::{Disconnect, ProtocolError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ProxyEndpoint, DEFAULT_PROXY};

/// Why a proxy gave no usable answer; logged, and the client gets a temporary error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProxyFailure(pub String);

/// What a backend decided.
#[derive(Debug)]
pub enum Answer<R> {
    Result(R),
    /// Refused with this error (sent to the client as it is).
    Error(ProtocolError),
    /// Refused, and the connection is to be closed with this code.
    Disconnect(Disconnect),
}

#[derive(Deserialize)]
#[serde(bound = "R: DeserializeOwned")]
struct Reply<R> {
    result: Option<R>,
    error: Option<ReplyError>,
    disconnect: Option<ReplyDisconnect>,
}

#[derive(Deserialize)]
struct ReplyError {
    code: u32,
    message: String,
    #[serde(default)]
    temporary: bool,
}

#[derive(Deserialize)]
struct ReplyDisconnect {
    code: u16,
}

/// One configured endpoint.
pub struct HttpProxy {
    http: reqwest::Client,
    endpoint: String,
    timeout: Duration,
    static_headers: reqwest::header::HeaderMap,
    /// Which of the client's request headers to copy onto the call.
    pass: Vec<HeaderName>,
}

fn header_map(
    pairs: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<reqwest::header::HeaderMap> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| anyhow::anyhow!("proxy header {name:?}: {e}"))?,
            reqwest::header::HeaderValue::from_str(&value)
                .map_err(|e| anyhow::anyhow!("proxy header {name:?}: {e}"))?,
        );
    }
    Ok(headers)
}

impl HttpProxy {
    pub fn new(config: &ProxyEndpoint, http: reqwest::Client) -> anyhow::Result<HttpProxy> {
        let statics = config
            .static_http_headers
            .iter()
            .chain(&config.http.static_headers)
            .map(|(k, v)| (k.clone(), v.clone()));
        let pass = config
            .http_headers
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map_err(|e| anyhow::anyhow!("http_headers: {h:?}: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(HttpProxy {
            http,
            endpoint: config.endpoint.clone(),
            timeout: config.timeout.0,
            static_headers: header_map(statics)?,
            pass,
        })
    }

    /// POSTs `request`; the backend's decision, or why there is none.
    pub async fn call<Q: Serialize, R: DeserializeOwned>(
        &self,
        request: &Q,
        client_headers: Option<&HeaderMap>,
    ) -> Result<Answer<R>, ProxyFailure> {
        let body = serde_json::to_vec(request).expect("invariant: proxy requests serialize");
        let mut headers = self.static_headers.clone();
        if let Some(from) = client_headers {
            for name in &self.pass {
                for value in from.get_all(name) {
                    if let Ok(v) = reqwest::header::HeaderValue::from_bytes(value.as_bytes()) {
                        headers.append(
                            name.as_str()
                                .parse::<reqwest::header::HeaderName>()
                                .expect("invariant: a valid name"),
                            v,
                        );
                    }
                }
            }
        }
        let response = self
            .http
            .post(&self.endpoint)
            .headers(headers)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| ProxyFailure(format!("{e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ProxyFailure(format!("{e}")))?;
        if !status.is_success() {
            return Err(ProxyFailure(format!("status {status}")));
        }
        let reply: Reply<R> = serde_json::from_slice(&bytes)
            .map_err(|e| ProxyFailure(format!("unexpected answer: {e}")))?;
        if let Some(e) = reply.error {
            return Ok(Answer::Error(ProtocolError {
                code: e.code,
                message: e.message,
                temporary: e.temporary,
            }));
        }
        if let Some(d) = reply.disconnect {
            if !(3000..5000).contains(&d.code) {
                return Err(ProxyFailure(format!(
                    "disconnect code {} out of 3000..4999",
                    d.code
                )));
            }
            return Ok(Answer::Disconnect(Disconnect {
                code: d.code,
                reason: "disconnected by the backend",
            }));
        }
        // Centrifugo takes an empty answer as a grant; Chorus wants a grant said, not implied.
        match reply.result {
            Some(r) => Ok(Answer::Result(r)),
            None => Err(ProxyFailure(
                "answer with neither result, error nor disconnect".into(),
            )),
        }
    }
}

/// The kinds of channel proxy a namespace can enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Subscribe,
    Publish,
    SubRefresh,
}

/// Every proxy the config names, built once per node.
#[derive(Default)]
pub struct Proxies {
    pub connect: Option<HttpProxy>,
    pub refresh: Option<HttpProxy>,
    defaults: HashMap<ChannelKind, Arc<HttpProxy>>,
    rpc_default: Option<Arc<HttpProxy>>,
    named: HashMap<String, Arc<HttpProxy>>,
    /// The client request headers any proxy wants: a connection keeps only these.
    pub wanted_headers: Vec<HeaderName>,
}

impl Proxies {
    pub fn new(config: &Config) -> anyhow::Result<Proxies> {
        let http = reqwest::Client::builder().build()?;
        let build = |p: &ProxyEndpoint| -> anyhow::Result<Option<HttpProxy>> {
            if p.endpoint.is_empty() {
                return Ok(None);
            }
            HttpProxy::new(p, http.clone()).map(Some)
        };
        let mut out = Proxies::default();
        let cp = &config.client.proxy;
        if cp.connect.enabled {
            out.connect = build(&cp.connect.proxy)?;
        }
        if cp.refresh.enabled {
            out.refresh = build(&cp.refresh.proxy)?;
        }
        let ch = &config.channel.proxy;
        for (kind, p) in [
            (ChannelKind::Subscribe, &ch.subscribe),
            (ChannelKind::Publish, &ch.publish),
            (ChannelKind::SubRefresh, &ch.sub_refresh),
        ] {
            if let Some(proxy) = build(p)? {
                out.defaults.insert(kind, Arc::new(proxy));
            }
        }
        out.rpc_default = build(&config.rpc.proxy)?.map(Arc::new);
        for named in &config.proxies {
            if let Some(proxy) = build(&named.proxy)? {
                out.named.insert(named.name.clone(), Arc::new(proxy));
            }
        }
        let mut wanted: Vec<HeaderName> = Vec::new();
        let all = [
            &cp.connect.proxy,
            &cp.refresh.proxy,
            &ch.subscribe,
            &ch.publish,
            &ch.sub_refresh,
            &config.rpc.proxy,
        ]
        .into_iter()
        .chain(config.proxies.iter().map(|n| &n.proxy));
        for p in all {
            for h in &p.http_headers {
                if let Ok(name) = HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()) {
                    if !wanted.contains(&name) {
                        wanted.push(name);
                    }
                }
            }
        }
        out.wanted_headers = wanted;
        Ok(out)
    }

    fn by_name<'a>(
        &'a self,
        name: &str,
        default: Option<&'a Arc<HttpProxy>>,
    ) -> Option<&'a HttpProxy> {
        if name.is_empty() || name == DEFAULT_PROXY {
            default.map(|p| &**p)
        } else {
            self.named.get(name).map(|p| &**p)
        }
    }

    /// The proxy a namespace's `<kind>_proxy_name` points at.
    pub fn channel(&self, kind: ChannelKind, name: &str) -> Option<&HttpProxy> {
        self.by_name(name, self.defaults.get(&kind))
    }

    /// The proxy an RPC namespace's `proxy_name` points at.
    pub fn rpc(&self, name: &str) -> Option<&HttpProxy> {
        self.by_name(name, self.rpc_default.as_ref())
    }

    /// The headers of a client's request that some proxy passes on, or `None` if none does.
    pub fn keep_headers(&self, from: &HeaderMap) -> Option<Arc<HeaderMap>> {
        if self.wanted_headers.is_empty() {
            return None;
        }
        let mut kept = HeaderMap::new();
        for name in &self.wanted_headers {
            for v in from.get_all(name) {
                kept.append(name.clone(), v.clone());
            }
        }
        Some(Arc::new(kept))
    }
}
