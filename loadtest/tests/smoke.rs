//! The CI smoke run: the real `chorus-loadtest` binary against a real hub on loopback.
//!
//! It asserts correctness only (everything delivered exactly once, no connect errors, no
//! unexpected disconnects), never a speed: the machines are shared and noisy.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chorus_hub::config::{load_str, Format};
use chorus_hub::listener::FdBudgetListener;
use chorus_hub::{Node, NodeParts};
use serde_json::Value;

const SECRET: &str = "smoke-secret";

/// 300 subscribers over two worker processes, 10 publications: 3000 deliveries.
const BROADCAST_300: &[&str] = &[
    "--connections",
    "300",
    "--workers",
    "2",
    "--publish-rate",
    "20",
    "--duration",
    "30",
    "--messages",
    "10",
];

/// 300 connections in rooms of 2..=50, 200 publications.
const ROOMS_300: &[&str] = &[
    "--connections",
    "300",
    "--publish-rate",
    "200",
    "--duration",
    "30",
    "--messages",
    "200",
];
const KEY: &str = "smoke-key";

struct Hub {
    node: Arc<Node>,
    addr: std::net::SocketAddr,
}

async fn start_hub() -> Hub {
    let json = format!(
        r#"{{"client": {{"token": {{"hmac_secret_key": "{SECRET}"}}}},
            "http_api": {{"key": "{KEY}"}},
            "channel": {{"without_namespace": {{"allow_subscribe_for_client": true,
                "allowed_delta_types": ["fossil"], "delta_publish": true}}}}}}"#
    );
    let config = load_str(&json, Format::Json, "smoke", Vec::new())
        .unwrap()
        .config;
    chorus_hub::config::validate::validate(&config).unwrap();
    let node = Node::new(
        config,
        NodeParts {
            fd_connection_budget: 5_000,
            ..Default::default()
        },
    )
    .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = FdBudgetListener::new(tcp, 5_000, node.metrics.connections_refused.clone());
    tokio::spawn(chorus_hub::server::run(
        node.clone(),
        listener,
        Duration::from_secs(5),
    ));
    Hub { node, addr }
}

/// Runs the harness binary and returns its JSON result.
async fn loadtest(hub: &Hub, scenario: &str, extra: &[&str]) -> Value {
    loadtest_at(hub.addr, scenario, extra).await
}

/// The harness against whatever serves Centrifugo's protocol at `addr`.
async fn loadtest_at(addr: std::net::SocketAddr, scenario: &str, extra: &[&str]) -> Value {
    let dir = std::env::temp_dir().join(format!(
        "chorus-smoke-{}-{scenario}-{}",
        std::process::id(),
        addr.port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("result.json");
    let url = format!("ws://{addr}/connection/websocket");
    let api = format!("http://{addr}");
    let pid = std::process::id().to_string();
    let mut args = vec![
        scenario,
        "--url",
        &url,
        "--url",
        &url,
        "--hmac-secret",
        SECRET,
        "--api-url",
        &api,
        "--api-key",
        KEY,
        "--settle",
        "0.2",
        "--drain-timeout",
        "20",
        "--server-pid",
        &pid,
        "--json",
    ];
    let json_arg = json.to_str().unwrap().to_string();
    args.push(&json_arg);
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_chorus-loadtest"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON result ({e}); harness said:\n{stderr}"));
    assert!(
        out.status.success(),
        "harness exited {:?}:\n{stderr}\n{report:#}",
        out.status
    );
    report
}

fn assert_clean(r: &Value, connections: u64, expected: u64) {
    assert_eq!(r["connections"], connections, "{r:#}");
    assert_eq!(r["connect_errors"], 0, "{r:#}");
    assert_eq!(r["expected_deliveries"], expected, "{r:#}");
    assert_eq!(r["delivered"], expected, "{r:#}");
    assert_eq!(r["lost"], 0, "{r:#}");
    assert_eq!(r["duplicated"], 0, "{r:#}");
    assert_eq!(r["unexpected_disconnects"], 0, "{r:#}");
    assert_eq!(r["publish_errors"], 0, "{r:#}");
    assert_eq!(r["protocol_errors"], 0, "{r:#}");
    assert!(
        r["latency_ms"]["max"].as_f64().unwrap() > 0.0,
        "latency was measured: {r:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_delivers_every_publication_to_every_subscriber_once() {
    let hub = start_hub().await;
    let r = loadtest(&hub, "broadcast", BROADCAST_300).await;
    assert_eq!(r["publications"], 10);
    assert_clean(&r, 300, 3000);
    assert!(
        r["bytes_per_connection"].is_number(),
        "server sampled: {r:#}"
    );
    // The harness closed its connections when done; the hub saw them all go.
    for _ in 0..100 {
        if hub.node.roster.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        hub.node.roster.is_empty(),
        "connections left open on the hub"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_clients_get_every_publication_in_fewer_bytes_than_json() {
    let hub = start_hub().await;
    let args = [
        "--connections",
        "100",
        "--publish-rate",
        "20",
        "--duration",
        "30",
        "--messages",
        "10",
    ];
    let json = loadtest(&hub, "broadcast", &args).await;
    let mut with_protobuf = args.to_vec();
    with_protobuf.extend(["--protocol", "centrifugo-protobuf"]);
    let protobuf = loadtest(&hub, "broadcast", &with_protobuf).await;
    assert_clean(&json, 100, 1000);
    assert_clean(&protobuf, 100, 1000);
    assert_eq!(protobuf["protocol"], "centrifugo_protobuf", "{protobuf:#}");
    // The same publications; Protobuf frames them in fewer bytes (bytes, not time: exact).
    let (j, p) = (
        json["bytes_received"].as_u64().unwrap(),
        protobuf["bytes_received"].as_u64().unwrap(),
    );
    assert!(p > 0 && p < j, "protobuf {p} bytes, json {j} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_compression_delivers_every_document_in_fewer_bytes() {
    let hub = start_hub().await;
    let args = [
        "--connections",
        "100",
        "--publish-rate",
        "20",
        "--duration",
        "30",
        "--messages",
        "10",
        "--payload-size",
        "512",
    ];
    let whole = loadtest(&hub, "broadcast", &args).await;
    assert_clean(&whole, 100, 1000);
    for protocol in ["centrifugo", "centrifugo-protobuf"] {
        let mut with_delta = args.to_vec();
        with_delta.extend(["--delta", "--protocol", protocol]);
        let r = loadtest(&hub, "broadcast", &with_delta).await;
        // Every document rebuilt from its delta: right sequence, nothing garbled.
        assert_clean(&r, 100, 1000);
        let (w, d) = (
            whole["bytes_received"].as_u64().unwrap(),
            r["bytes_received"].as_u64().unwrap(),
        );
        // The first of the ten is whole; the other nine are deltas of a few dozen bytes.
        assert!(d * 2 < w, "{protocol}: {d} bytes with deltas, {w} without");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_deliver_each_room_its_own_messages_in_order() {
    let hub = start_hub().await;
    let r = loadtest(&hub, "rooms", ROOMS_300).await;
    assert_eq!(r["publications"], 200);
    let expected = r["expected_deliveries"].as_u64().unwrap();
    // Each publication reaches a whole room of 2..=50 members.
    assert!((400..=200 * 60).contains(&expected), "{r:#}");
    assert_clean(&r, 300, expected);
    assert_eq!(r["reordered"], 0, "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_server_serves_the_harness_as_a_hub_does() {
    // `scripts/bench` measures the hub against this; it must deliver what the hub delivers.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(chorus_loadtest::floor_server::run(tcp));
    let r = loadtest_at(addr, "broadcast", BROADCAST_300).await;
    assert_eq!(r["publications"], 10);
    assert_clean(&r, 300, 3000);
    let r = loadtest_at(addr, "rooms", ROOMS_300).await;
    let expected = r["expected_deliveries"].as_u64().unwrap();
    assert!((400..=200 * 60).contains(&expected), "{r:#}");
    assert_clean(&r, 300, expected);
    assert_eq!(r["reordered"], 0, "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_reported_not_hidden() {
    let hub = start_hub().await;
    // A wrong secret: the hub refuses every connect, and the harness must say so and fail.
    let url = format!("ws://{}/connection/websocket", hub.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_chorus-loadtest"))
            .args([
                "idle",
                "--url",
                &url,
                "--connections",
                "5",
                "--duration",
                "0",
                "--settle",
                "0",
            ])
            .args(["--hmac-secret", "wrong"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        !out.status.success(),
        "a run with failed connections must not pass"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("5 failed"), "{stderr}");
}
