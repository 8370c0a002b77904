//! The images run as the chart tells a cluster to run them: the closest thing to pods on this
//! machine. The chart is rendered for loopback (real Redis, tansu, DynamoDB Local, moto's S3
//! and the machine's PostgreSQL, each started here), each Deployment's pod is stood in for by
//! its image under podman with the rendered command, arguments, environment and config
//! (`chorus_k8s_checks::pod`), and then:
//!
//! - every pod's probes and its ServiceMonitor's `/metrics` answer, with the process metrics;
//! - a message sent through the API container reaches a WebSocket client of the hub
//!   container, and a voice message comes back transcribed by the transcriber container;
//! - a slow client is closed with 3008;
//! - Debian's Prometheus scrapes the four pods, and every query of every dashboard panel
//!   returns data, with traffic flowing through every service while the panels are read.
//!
//! Needs the images (`scripts/images` builds them; scripts/test does before the tests).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chorus_k8s_checks::chart::{container, port_named, render};
use chorus_k8s_checks::pod::{Pod, Secrets};
use chorus_k8s_checks::prometheus::Prometheus;
use chorus_testkit::api::ApiClient;
use chorus_testkit::client::Client;
use chorus_testkit::dynamodb::DynamoLocal;
use chorus_testkit::moto::Moto;
use chorus_testkit::postgres::ScratchDb;
use chorus_testkit::redis::RedisServer;
use chorus_testkit::tansu::{unique, Tansu};
use chorus_testkit::{eventually, free_port};
use serde_json::{json, Value};

const HUB_SECRET: &str = "a-hub-secret-of-at-least-32-bytes!!";
const JWT_SECRET: &str = "a-jwt-secret-of-at-least-32-bytes!!!";
const HUB_API_KEY: &str = "hub-api-key-from-a-secret";
const PROXY_KEY: &str = "proxy-key-from-a-secret";

fn secrets(database_url: &str) -> Secrets {
    let map = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Secrets::from([
        (
            "chorus".to_owned(),
            map(&[
                ("jwt-secret", JWT_SECRET),
                ("hub-api-key", HUB_API_KEY),
                ("hub-token-hmac-secret", HUB_SECRET),
                ("hub-proxy-key", PROXY_KEY),
                ("database-url", database_url),
            ]),
        ),
        // Static AWS keys, as a team without IRSA would give them (envSecret).
        (
            "aws".to_owned(),
            map(&[("id", "testing"), ("key", "testing")]),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_images_run_as_pods_serve_chat_and_feed_every_dashboard_panel() {
    // Real services on loopback, as a cluster would find them outside the chart.
    let redis = RedisServer::start().await;
    let tansu = Tansu::start().await;
    let dynamo = DynamoLocal::start().await;
    let bucket = "chorus-media";
    let moto = Moto::start().await;
    moto.create_bucket(bucket).await;
    let (messages, state, audio, images, table) = (
        unique("chat-events"),
        unique("chat-state"),
        unique("chat-audio"),
        unique("chat-images"),
        unique("messages"),
    );
    for (t, n) in [(&messages, 3), (&state, 1), (&audio, 1), (&images, 1)] {
        tansu.create_topic(t, n).await;
    }
    let db = ScratchDb::create("k8s");

    // The chart, rendered for this machine: only addresses, ports and test-sized limits.
    let (hub_port, hub_internal, api_port, sink_port, transcriber_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let tag = std::env::var("CHORUS_IMAGE_TAG").unwrap_or_else(|_| "dev".into());
    let values = json!({
        "image": {"registry": "localhost", "repository": "chorus", "tag": tag},
        "kafka": {"brokers": tansu.brokers(),
                  "topics": {"messages": messages, "state": state, "audio": audio, "images": images}},
        "redis": {"address": redis.url()},
        "dynamodb": {"endpoint": dynamo.endpoint(), "table": table},
        "media": {"s3": {"bucket": bucket, "endpoint": moto.endpoint(), "allowHttp": true}},
        "log": {"format": "json", "level": "info"},
        "hub": {"replicaCount": 1, "ports": {"http": hub_port, "internal": hub_internal},
                "config": {"client": {"queue_max_size": 65536},
                           "channel": {"without_namespace": {"allow_subscribe_for_client": true}}}},
        "api": {"replicaCount": 1, "port": api_port,
                "config": {"outbox": {"poll_ms": 100}, "kafka": {"state_group": unique("api-state")}},
                "envSecret": [{"name": "AWS_ACCESS_KEY_ID", "secretName": "aws", "key": "id"},
                              {"name": "AWS_SECRET_ACCESS_KEY", "secretName": "aws", "key": "key"}]},
        "sink": {"replicaCount": 1, "port": sink_port,
                 "config": {"batch": {"flush_interval_ms": 20}, "kafka": {"group": unique("sink")}}},
        "transcriber": {"replicaCount": 1, "port": transcriber_port,
                        "config": {"kafka": {"group": unique("transcriber")}},
                        "envSecret": [{"name": "AWS_ACCESS_KEY_ID", "secretName": "aws", "key": "id"},
                                      {"name": "AWS_SECRET_ACCESS_KEY", "secretName": "aws", "key": "key"}]},
        "metrics": {"serviceMonitor": {"enabled": true}},
    });
    let values_file =
        std::env::temp_dir().join(format!("chorus-k8s-values-{}.yaml", std::process::id()));
    std::fs::write(&values_file, serde_json::to_string(&values).unwrap()).unwrap();
    let manifests = render(&[&values_file], &[]).unwrap();
    let _ = std::fs::remove_file(&values_file);
    let secrets = secrets(&db.url());
    let hosts: Vec<String> = manifests
        .of_kind("Service")
        .map(|s| s["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();

    // The pods, dependencies first as a cluster would converge on (the hub's proxy and the
    // API's hub calls retry meanwhile either way).
    let mut pods = Vec::new();
    for component in ["hub", "api", "sink", "transcriber"] {
        pods.push((
            component,
            Pod::run(&manifests, component, &secrets, &hosts).unwrap(),
        ));
    }
    let client = reqwest::Client::new();
    for (component, pod) in &pods {
        let d = manifests.deployment(component).unwrap();
        let c = container(d);
        let probe = c["readinessProbe"]["httpGet"]["port"].as_str().unwrap();
        let port = port_named(c, probe).unwrap();
        let url = format!("http://127.0.0.1:{port}/health");
        let mut ready = false;
        for _ in 0..600 {
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    ready = true;
                    break;
                }
            }
            if !pod.running() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            ready,
            "{component}: readiness {url} never answered 200; its log:\n{}",
            pod.logs()
        );
        // The ServiceMonitor's port and path, through the Service it selects.
        let sm = manifests
            .of_kind("ServiceMonitor")
            .find(|s| s["metadata"]["labels"]["app.kubernetes.io/component"] == *component)
            .unwrap();
        let sm_port = port_named(c, sm["spec"]["endpoints"][0]["port"].as_str().unwrap()).unwrap();
        let metrics = client
            .get(format!(
                "http://127.0.0.1:{sm_port}{}",
                sm["spec"]["endpoints"][0]["path"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for needed in [
            "process_resident_memory_bytes",
            "process_open_fds",
            &format!("chorus_{component}_build_info"),
        ] {
            assert!(
                metrics.contains(needed),
                "{component}: /metrics lacks {needed}"
            );
        }
    }
    // Hub and API ports from the rendered manifests, not from what this test asked for.
    let hub_c = container(manifests.deployment("hub").unwrap());
    let ws_url = format!(
        "ws://127.0.0.1:{}/connection/websocket",
        port_named(hub_c, "http").unwrap()
    );
    let hub_api = format!(
        "http://127.0.0.1:{}/api",
        port_named(hub_c, "internal").unwrap()
    );
    // The API container, over its Service's port.
    let api = ApiClient::new(format!(
        "http://127.0.0.1:{}",
        port_named(container(manifests.deployment("api").unwrap()), "http").unwrap()
    ));

    // The hub's client port, the one the ingress routes, serves neither the server API nor the
    // probes nor the metrics: they are on the internal port only.
    let public = format!("http://127.0.0.1:{}", port_named(hub_c, "http").unwrap());
    for path in ["/metrics", "/health", "/api/info"] {
        let r = client
            .post(format!("{public}{path}"))
            .header("X-API-Key", HUB_API_KEY)
            .send()
            .await
            .unwrap();
        let g = client.get(format!("{public}{path}")).send().await.unwrap();
        assert_eq!(
            (r.status().as_u16(), g.status().as_u16()),
            (404, 404),
            "{path} on the hub's client port"
        );
    }

    // Prometheus scrapes the pods, as the ServiceMonitors ask (job = chorus-<component>).
    let mut targets = Vec::new();
    for sm in manifests.of_kind("ServiceMonitor") {
        let component = sm["metadata"]["labels"]["app.kubernetes.io/component"]
            .as_str()
            .unwrap();
        let c = container(manifests.deployment(component).unwrap());
        let port = port_named(c, sm["spec"]["endpoints"][0]["port"].as_str().unwrap()).unwrap();
        targets.push((component, format!("127.0.0.1:{port}")));
    }
    let jobs: Vec<(String, String)> = targets
        .iter()
        .map(|(c, t)| (format!("chorus-{c}"), t.clone()))
        .collect();
    let job_refs: Vec<(&str, String)> = jobs.iter().map(|(j, t)| (j.as_str(), t.clone())).collect();
    let prometheus = Prometheus::start(&job_refs).await.unwrap();
    // Traffic only once every pod has been scraped: a counter's first sample must come before
    // its first increase, or rate() cannot see it.
    let mut scraped = false;
    for _ in 0..100 {
        let up = prometheus.query("up == 1").await.unwrap();
        if up.len() == jobs.len() {
            scraped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        scraped,
        "Prometheus never scraped all {} pods: {}",
        jobs.len(),
        prometheus.log()
    );

    // Two users, a chat, a live subscriber on the hub container.
    let (_, ann) = api.user("ann").await;
    let (bob_id, bob_token) = api.user("bob").await;
    let tokens = [ann, bob_token];
    let (s, chat) = api
        .call(
            "POST",
            "/chats",
            Some(&tokens[0]),
            Some(json!({"title": "pods"})),
        )
        .await;
    assert_eq!(s, 201, "{chat}");
    let chat_id = chat["id"].as_str().unwrap().to_owned();
    let (s, b) = api
        .call(
            "POST",
            &format!("/chats/{chat_id}/members"),
            Some(&tokens[0]),
            Some(json!({"user_id": bob_id})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = api
        .call("POST", "/hub/connection-token", Some(&tokens[1]), None)
        .await;
    assert_eq!(s, 200, "{b}");
    let mut bob = Client::open(&ws_url).await;
    bob.send(json!({"id": 1, "connect": {"token": b["token"]}}))
        .await;
    let r = bob.reply(1).await;
    assert!(r.get("error").is_none(), "{r}");
    // Through the subscribe proxy: hub container → API container, with the key from a secret.
    bob.send(json!({"id": 2, "subscribe": {"channel": format!("chat:{chat_id}")}}))
        .await;
    let r = bob.reply(2).await;
    assert!(r.get("error").is_none(), "the proxy refused a member: {r}");

    // A message through the API container reaches the hub container's client.
    let (s, sent) = api
        .call(
            "POST",
            &format!("/chats/{chat_id}/messages"),
            Some(&tokens[0]),
            Some(json!({"text": "hello from a pod"})),
        )
        .await;
    assert_eq!(s, 201, "{sent}");
    let message_id = sent["message_id"].as_str().unwrap().to_owned();
    let got = loop {
        let p = bob.next_pub().await;
        let data = &p["push"]["pub"]["data"];
        if data["type"] == "message.created" {
            break data.clone();
        }
    };
    assert_eq!(got["data"]["text"], "hello from a pod", "{got}");
    assert_eq!(got["data"]["message_id"], message_id.as_str(), "{got}");

    // A voice message: API container → S3 → Kafka → transcriber container → hub container.
    let sentence = "the quick brown fox jumps over the lazy dog";
    let clip = chorus_testkit::speech::ogg_opus(sentence);
    let (boundary, body) = (
        chorus_testkit::client::MULTIPART_BOUNDARY,
        chorus_testkit::client::multipart_file(&clip),
    );
    let r = client
        .post(format!("{}/chats/{chat_id}/voice", api.base))
        .header("authorization", format!("Bearer {}", tokens[0]))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "voice upload: {} {}",
        r.status(),
        r.text().await.unwrap()
    );
    let transcript = loop {
        let p = bob.next_pub().await;
        let data = &p["push"]["pub"]["data"];
        if data["type"] == "message.transcribed" {
            break data["data"]["transcript"].as_str().unwrap().to_owned();
        }
    };
    let wer = chorus_testkit::wer::word_error_rate(sentence, &transcript);
    assert!(
        wer < 0.5,
        "transcript {transcript:?} is far from {sentence:?} (WER {wer})"
    );

    // History, written by the sink container into DynamoDB, read by the API container.
    eventually("both messages in history", 30, || {
        let (api, chat_id, token, message_id) = (
            api.clone(),
            chat_id.clone(),
            tokens[0].clone(),
            message_id.clone(),
        );
        async move {
            let (s, b) = api
                .call(
                    "GET",
                    &format!("/chats/{chat_id}/messages"),
                    Some(&token),
                    None,
                )
                .await;
            let ids: Vec<&str> = b["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["message_id"].as_str())
                .collect();
            s == 200 && ids.len() == 2 && ids.contains(&message_id.as_str())
        }
    })
    .await;

    // A slow client: subscribed, never reading, flooded past its 64 KiB queue; closed 3008.
    let mut slow = Client::open(&ws_url).await;
    let (s, b) = api
        .call("POST", "/hub/connection-token", Some(&tokens[0]), None)
        .await;
    assert_eq!(s, 200, "{b}");
    slow.send(json!({"id": 1, "connect": {"token": b["token"]}}))
        .await;
    slow.reply(1).await;
    slow.send(json!({"id": 2, "subscribe": {"channel": "firehose"}}))
        .await;
    let r = slow.reply(2).await;
    assert!(r.get("error").is_none(), "{r}");
    let blob = "z".repeat(60_000);
    for _ in 0..1_500 {
        let r = client
            .post(format!("{hub_api}/publish"))
            .header("X-API-Key", HUB_API_KEY)
            .body(json!({"channel": "firehose", "data": {"blob": blob}}).to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    eventually("the slow client closed with 3008", 30, || {
        let (client, hub_metrics) = (
            client.clone(),
            format!(
                "http://127.0.0.1:{}/metrics",
                port_named(hub_c, "internal").unwrap()
            ),
        );
        async move {
            let text = client
                .get(hub_metrics)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines().any(|l| {
                l.starts_with("chorus_hub_disconnects_total{code=\"3008\"}") && !l.ends_with(" 0")
            })
        }
    })
    .await;
    drop(slow);

    // Traffic all through the panel check: a rate (and a quantile of one) needs an increase
    // between two scrapes inside its window, and a histogram last observed before the first
    // scrape reads NaN however long one waits. So while the panels are read, a message a
    // second goes API → Kafka → hub → Bob and the sink, Bob asks the hub for history (a
    // client command), the server API publishes, and every fifth round a voice message feeds
    // the transcriber's histograms.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (api, client, stop) = (api.clone(), client.clone(), stop.clone());
        let (token, chat_id, hub_api) = (tokens[0].clone(), chat_id.clone(), hub_api.clone());
        let channel = format!("chat:{chat_id}");
        async move {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let path = format!("/chats/{chat_id}/messages");
                let body = json!({"text": format!("traffic {round}")});
                let (s, b) = api.call("POST", &path, Some(&token), Some(body)).await;
                assert!(s == 201 || s == 202, "traffic send: {s} {b}");
                bob.send(json!({"id": 1000 + round, "history": {"channel": channel, "limit": 1}}))
                    .await;
                let r = client
                    .post(format!("{hub_api}/publish"))
                    .header("X-API-Key", HUB_API_KEY)
                    .body(json!({"channel": "firehose", "data": {"round": round}}).to_string())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                if round % 5 == 1 {
                    let body = chorus_testkit::client::multipart_file(&clip);
                    let r = client
                        .post(format!("{}/chats/{chat_id}/voice", api.base))
                        .header("authorization", format!("Bearer {token}"))
                        .header(
                            "content-type",
                            format!("multipart/form-data; boundary={boundary}"),
                        )
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "traffic voice: {}", r.status());
                }
                // Bob reads what came, so he is never the slow client.
                let got = bob.quiet_for(Duration::from_secs(1)).await;
                assert!(
                    got.iter().all(|v| v.get("error").is_none()),
                    "bob's commands failed: {got:?}"
                );
            }
        }
    });

    // Every panel's every query returns a number from the live pods.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(chorus_k8s_checks::repo_root().join("k8s/grafana/chorus.json"))
            .unwrap(),
    )
    .unwrap();
    let mut empty = Vec::new();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "5m");
            assert!(!expr.contains('$'), "an unsubstituted variable in {expr}");
            checked += 1;
            // A number, not only a series: a histogram nobody observed gives NaN quantiles.
            // A rate needs two scrapes after the first observation, so a query without one
            // is asked again for a while (scrapes every few seconds) before it counts.
            let mut answer = None;
            for _ in 0..15 {
                match prometheus.query(&expr).await {
                    Ok(r)
                        if r.iter()
                            .any(|s| s["value"][1].as_str().is_some_and(|v| v != "NaN")) =>
                    {
                        answer = None;
                        break;
                    }
                    Ok(r) => answer = Some(format!("{}: {expr} gave {r:?}", panel["title"])),
                    Err(e) => answer = Some(format!("{}: {e}", panel["title"])),
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            empty.extend(answer);
        }
    }
    stop.store(true, Ordering::Relaxed);
    traffic
        .await
        .expect("the traffic during the panel check ran clean");
    eprintln!(
        "pods: {checked} dashboard queries returned data; transcript {transcript:?} (WER {wer:.2})"
    );
    for r in prometheus
        .query("process_resident_memory_bytes")
        .await
        .unwrap()
    {
        let mb = r["value"][1].as_str().unwrap().parse::<f64>().unwrap() / 1e6;
        eprintln!("pods: {} resident {mb:.1} MB", r["metric"]["job"]);
    }
    assert!(checked >= 40, "only {checked} queries in the dashboard");
    assert!(
        empty.is_empty(),
        "panels with no data from the live stack:\n{}",
        empty.join("\n")
    );
    // Every pod is still up: nothing crashed along the way.
    for (component, pod) in &pods {
        assert!(
            pod.running(),
            "{component} stopped; its log:\n{}",
            pod.logs()
        );
    }
    drop(pods);
    drop((redis, tansu, dynamo, moto, db));
}
