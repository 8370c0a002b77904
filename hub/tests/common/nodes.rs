//! Several `chorus-hub` processes on loopback acting as one over the Redis engine, whatever
//! its topology: starting them, their server API, and following a stream through outages
//! while recording where a client was told it could not recover.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use chorus_protocol::codes::DISCONNECT_INSUFFICIENT_STATE;
use chorus_testkit::hub::HubProcess;
use serde_json::{json, Value};

use super::tansu::unique;
use super::{config_json, hub_bin, Client, Closed, API_KEY};

/// A Redis-engine config in a temp file: `redis` is `engine.redis` without the prefix, which
/// is unique per test. Presence expires 3 s after a node's last refresh.
pub fn write_config(redis: Value) -> PathBuf {
    write_config_with(redis, |_| {})
}

pub fn write_config_with(mut redis: Value, tweak: impl FnOnce(&mut Value)) -> PathBuf {
    let mut config: Value =
        serde_json::from_str(&config_json(r#", "presence_update_interval": "1s""#)).unwrap();
    // Centrifugo's default ping timing: these raw clients do not answer pings.
    config["client"]["ping_interval"] = json!("25s");
    config["client"]["pong_timeout"] = json!("8s");
    config["log"] = json!({"level": "warn"});
    redis["prefix"] = json!(unique("chorus"));
    redis["presence_ttl"] = json!("3s");
    config["engine"] = json!({"type": "redis", "redis": redis});
    tweak(&mut config);
    let path = std::env::temp_dir().join(format!("{}.json", unique("chorus-cluster")));
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// `n` nodes started from `config`, returned once every node lists all of them.
pub async fn start_nodes(config: &std::path::Path, n: usize) -> Vec<HubProcess> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(HubProcess::start(hub_bin(), config).await);
    }
    for node in &nodes {
        eventually_async("every node to see the others", || async {
            api(node, "info", json!({})).await["result"]["nodes"]
                .as_array()
                .is_some_and(|a| a.len() == n)
        })
        .await;
    }
    nodes
}

pub async fn api(node: &HubProcess, method: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/{method}", node.http()))
        .header("X-API-Key", API_KEY)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

pub async fn get(node: &HubProcess, path: &str) -> String {
    match reqwest::get(format!("{}{path}", node.http())).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

pub async fn eventually_async<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

pub async fn subscribe(c: &mut Client, id: u64, channel: &str) -> Value {
    c.send(json!({"id": id, "subscribe": {"channel": channel}}))
        .await;
    c.reply(id).await
}

pub async fn publish(node: &HubProcess, channel: &str, n: u64) -> Value {
    api(
        node,
        "publish",
        json!({"channel": channel, "data": {"n": n}}),
    )
    .await
}

/// The next publication push: (its `n`, its offset).
pub async fn next_n(c: &mut Client) -> (u64, u64) {
    let v = c.next_pub().await;
    let p = &v["push"]["pub"];
    (
        p["data"]["n"].as_u64().unwrap(),
        p["offset"].as_u64().unwrap(),
    )
}

/// The users present in `channel`, read on `node`.
pub async fn present_users(node: &HubProcess, channel: &str) -> BTreeSet<String> {
    let presence = api(node, "presence", json!({"channel": channel})).await;
    presence["result"]["presence"]
        .as_object()
        .map(|o| {
            o.values()
                .map(|i| i["user"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// What one client saw of a stream: every `n` it received, and where it was told that it
/// could not recover (after which a jump is expected and honest).
#[derive(Default, Debug)]
pub struct Seen {
    pub got: Vec<u64>,
    pub unrecovered_before: BTreeSet<usize>,
}

/// Follows `channel` on the first of `urls`, reconnecting (and recovering, on the next
/// node when one is gone) whenever the node tells it to, until it has received `last`.
pub async fn follow(urls: Vec<String>, user: String, channel: String, last: u64) -> Seen {
    let mut seen = Seen::default();
    let mut position: Option<(u64, String)> = None;
    let mut attempt = 0usize;
    'connection: loop {
        let url = &urls[attempt % urls.len()];
        let Some((mut c, _)) = Client::try_connect(url, &user).await else {
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut req = json!({"channel": channel});
        if let Some((offset, epoch)) = &position {
            req["recover"] = json!(true);
            req["offset"] = json!(offset);
            req["epoch"] = json!(epoch);
        }
        c.send(json!({"id": 2, "subscribe": req})).await;
        let Ok(r) = c.try_reply(2).await else {
            attempt += 1;
            continue;
        };
        if r.get("error").is_some() {
            // Redis is down: the subscribe fails with a temporary error; try again.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let s = &r["subscribe"];
        if position.is_some() && s["recovered"] != true {
            seen.unrecovered_before.insert(seen.got.len());
        }
        for p in s["publications"].as_array().into_iter().flatten() {
            seen.got.push(p["data"]["n"].as_u64().unwrap());
        }
        let epoch = s["epoch"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_owned();
        position = Some((s["offset"].as_u64().unwrap_or(0), epoch.clone()));
        loop {
            if seen.got.last() == Some(&last) {
                return seen;
            }
            match c.next().await {
                Ok(v) => {
                    if let Some(p) = v["push"].get("pub") {
                        seen.got.push(p["data"]["n"].as_u64().unwrap());
                        position = Some((p["offset"].as_u64().unwrap(), epoch.clone()));
                    }
                }
                Err(Closed::Code(code)) => {
                    assert_eq!(code, DISCONNECT_INSUFFICIENT_STATE.code, "reconnect advice");
                    continue 'connection;
                }
                Err(Closed::NoFrame) => {
                    attempt += 1;
                    continue 'connection;
                }
            }
        }
    }
}

/// Between two received publications with no "cannot recover" in between, nothing
/// acknowledged is missing and nothing is repeated.
pub fn assert_no_silent_gap(seen: &Seen, acknowledged: &[u64], who: &str) {
    for i in 1..seen.got.len() {
        if seen.unrecovered_before.contains(&i) {
            continue;
        }
        let (a, b) = (seen.got[i - 1], seen.got[i]);
        let next = acknowledged.iter().find(|&&x| x > a).copied();
        assert_eq!(
            Some(b),
            next,
            "{who}: after {a} came {b}: a silent gap or a duplicate"
        );
    }
}
