//! The chart's rendered manifests, for every value profile: what a cluster would be given,
//! checked for the mistakes a cluster would only show at deploy time (or never).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use chorus_k8s_checks::chart::{chart_dir, container, port_named, render, selects, Manifests};
use serde_json::Value;

/// The profiles CI renders: defaults (with the one value they require), and ci/*.yaml.
fn profiles() -> Vec<(String, Manifests)> {
    let mut out = vec![(
        "defaults".to_owned(),
        render(&[], &["media.s3.bucket=media"]).unwrap(),
    )];
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 2,
        "ci/ holds the minimal and production profiles"
    );
    for f in files {
        let m = render(&[&f], &[]).unwrap();
        out.push((f.file_name().unwrap().to_string_lossy().into_owned(), m));
    }
    out
}

fn name(d: &Value) -> &str {
    d["metadata"]["name"].as_str().unwrap()
}

#[test]
fn selectors_match_pod_labels_and_named_ports_exist() {
    for (profile, m) in profiles() {
        let deployments: Vec<&Value> = m.of_kind("Deployment").collect();
        assert!(!deployments.is_empty(), "{profile}: no Deployment");
        for d in &deployments {
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            assert!(
                selects(&d["spec"]["selector"]["matchLabels"], labels),
                "{profile}: {} selects other pods than its own",
                name(d)
            );
            let c = container(d);
            for probe in ["livenessProbe", "readinessProbe"] {
                let port = &c[probe]["httpGet"]["port"];
                assert_eq!(
                    c[probe]["httpGet"]["path"],
                    "/health",
                    "{profile}: {}",
                    name(d)
                );
                assert!(
                    port_named(c, port.as_str().unwrap()).is_some(),
                    "{profile}: {} probes a port {port} it does not declare",
                    name(d)
                );
            }
        }
        // Every Service selects exactly one Deployment's pods, on ports those pods declare.
        for s in m.of_kind("Service") {
            let matching: Vec<&&Value> = deployments
                .iter()
                .filter(|d| {
                    selects(
                        &s["spec"]["selector"],
                        &d["spec"]["template"]["metadata"]["labels"],
                    )
                })
                .collect();
            assert_eq!(
                matching.len(),
                1,
                "{profile}: Service {} selects {} Deployments",
                name(s),
                matching.len()
            );
            for p in s["spec"]["ports"].as_array().unwrap() {
                let target = p["targetPort"].as_str().unwrap();
                assert!(
                    port_named(container(matching[0]), target).is_some(),
                    "{profile}: Service {} targets a port {target} its pods lack",
                    name(s)
                );
            }
        }
        // PDBs and HPAs point at things that exist.
        for pdb in m.of_kind("PodDisruptionBudget") {
            assert!(
                deployments.iter().any(|d| selects(
                    &pdb["spec"]["selector"]["matchLabels"],
                    &d["spec"]["template"]["metadata"]["labels"]
                )),
                "{profile}: PDB {} covers no pods",
                name(pdb)
            );
        }
        for hpa in m.of_kind("HorizontalPodAutoscaler") {
            let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
            let d = m.get("Deployment", target).unwrap_or_else(|| {
                panic!("{profile}: HPA {} scales a missing {target}", name(hpa))
            });
            assert!(
                d["spec"].get("replicas").is_none(),
                "{profile}: {target} sets replicas while an HPA scales it"
            );
        }
        // ServiceMonitors scrape /metrics on a port a selected Service has.
        for sm in m.of_kind("ServiceMonitor") {
            let services: Vec<&Value> = m
                .of_kind("Service")
                .filter(|s| {
                    selects(
                        &sm["spec"]["selector"]["matchLabels"],
                        &s["metadata"]["labels"],
                    )
                })
                .collect();
            assert_eq!(
                services.len(),
                1,
                "{profile}: ServiceMonitor {} selects {} Services",
                name(sm),
                services.len()
            );
            let job = &services[0]["metadata"]["labels"][sm["spec"]["jobLabel"].as_str().unwrap()];
            assert!(
                job.as_str().unwrap().starts_with("chorus-"),
                "{profile}: job {job}"
            );
            for e in sm["spec"]["endpoints"].as_array().unwrap() {
                assert_eq!(e["path"], "/metrics");
                let port = e["port"].as_str().unwrap();
                assert!(
                    services[0]["spec"]["ports"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == port),
                    "{profile}: ServiceMonitor {} scrapes a port {port} its Service lacks",
                    name(sm)
                );
            }
        }
    }
}

#[test]
fn pods_are_locked_down_and_outlive_their_own_shutdown() {
    for (profile, m) in profiles() {
        for d in m.of_kind("Deployment") {
            let spec = &d["spec"]["template"]["spec"];
            let c = container(d);
            assert_eq!(
                spec["securityContext"]["runAsNonRoot"],
                true,
                "{profile}: {}",
                name(d)
            );
            assert_eq!(
                c["securityContext"]["readOnlyRootFilesystem"],
                true,
                "{profile}: {}",
                name(d)
            );
            assert_eq!(
                c["securityContext"]["allowPrivilegeEscalation"],
                false,
                "{profile}: {}",
                name(d)
            );
            assert_eq!(
                c["securityContext"]["capabilities"]["drop"][0],
                "ALL",
                "{profile}: {}",
                name(d)
            );
            assert_eq!(
                d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
                0,
                "{profile}: {}",
                name(d)
            );
            assert!(
                c["resources"]["requests"].is_object(),
                "{profile}: {} has no requests",
                name(d)
            );
            let spread = &spec["topologySpreadConstraints"][0];
            assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
            // SIGKILL comes only after the preStop delay and the service's own grace.
            let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
                .as_u64()
                .unwrap();
            let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
            let own = own_shutdown_seconds(&m, d);
            assert!(
                grace > own + pre_stop,
                "{profile}: {} is killed after {grace}s but needs {own}s + {pre_stop}s",
                name(d)
            );
        }
    }
}

/// The shutdown grace the service itself is configured with, read from its rendered config.
fn own_shutdown_seconds(m: &Manifests, d: &Value) -> u64 {
    let component = d["metadata"]["labels"]["app.kubernetes.io/component"]
        .as_str()
        .unwrap();
    let files = m.config_map(name(d)).unwrap();
    match component {
        "hub" => {
            let cfg: Value = serde_json::from_str(files["config.json"].as_str().unwrap()).unwrap();
            let t = cfg["shutdown"]["timeout"].as_str().unwrap_or("30s");
            t.trim_end_matches('s').parse().unwrap()
        }
        "sink" => {
            let text = files["sink.toml"].as_str().unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("\"shutdown_timeout_ms\""))
                .unwrap();
            line.split('=')
                .nth(1)
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
                / 1000
        }
        // The API drains in-flight requests and the transcriber finishes or hands back its
        // clip, neither with a grace of its own: the pod's shutdownGraceSeconds bounds them.
        _ => 0,
    }
}

#[test]
fn no_secret_reaches_a_config_map_and_secrets_come_from_secret_refs() {
    let secret_names = [
        "jwt_secret",
        "api_key",
        "hmac_secret",
        "token_hmac_secret",
        "proxy_key",
        "database_url",
        "secret_access_key",
        "access_key_id",
        "sasl_password",
        "password",
        "X-Chorus-Proxy-Key",
    ];
    for (profile, m) in profiles() {
        for cm in m.of_kind("ConfigMap") {
            for (file, text) in cm["data"].as_object().unwrap() {
                let text = text.as_str().unwrap();
                for s in secret_names {
                    assert!(
                        !text.contains(s),
                        "{profile}: ConfigMap {} file {file} holds {s}",
                        name(cm)
                    );
                }
            }
        }
        for d in m.of_kind("Deployment") {
            for e in container(d)["env"].as_array().into_iter().flatten() {
                let n = e["name"].as_str().unwrap().to_ascii_lowercase();
                if secret_names
                    .iter()
                    .any(|s| n.ends_with(&s.to_ascii_lowercase()))
                    || n.ends_with("sasl.password")
                {
                    assert!(
                        e["valueFrom"].get("secretKeyRef").is_some(),
                        "{profile}: {} sets {n} without a secretKeyRef",
                        name(d)
                    );
                }
            }
        }
        assert!(
            m.of_kind("Secret").next().is_none(),
            "{profile}: the chart creates a Secret"
        );
    }
}

#[test]
fn numbers_render_as_integers() {
    // Helm reads every number in values as a float: 1048576 must not become 1.048576e+06, and
    // 5000 must not become 5000.0 (the services' TOML parser refuses a float for an integer).
    let big = render(
        &[],
        &[
            "media.s3.bucket=m",
            "hub.config.client.queue_max_size=10485760",
            "api.config.kafka.send_timeout_ms=5000",
            "sink.config.batch.max_pending=2000000",
        ],
    )
    .unwrap();
    for (profile, m) in profiles()
        .into_iter()
        .chain([("big numbers".to_owned(), big)])
    {
        assert!(
            !m.text.contains("e+0"),
            "{profile}: an exponent in the manifests"
        );
        for cm in m.of_kind("ConfigMap") {
            for (file, text) in cm["data"].as_object().unwrap() {
                let text = text.as_str().unwrap();
                let float = text
                    .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .find(|w| w.ends_with(".0") && w.len() > 2 && w.matches('.').count() == 1);
                assert_eq!(
                    float, None,
                    "{profile}: {file} has a float where an integer was given:\n{text}"
                );
            }
        }
    }
    let m = render(
        &[],
        &[
            "media.s3.bucket=m",
            "hub.config.client.queue_max_size=10485760",
            "sink.config.batch.max_pending=2000000",
        ],
    )
    .unwrap();
    let hub: Value = serde_json::from_str(
        m.config_map("rel-chorus-hub").unwrap()["config.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(hub["client"]["queue_max_size"], 10485760);
    let sink = m.config_map("rel-chorus-sink").unwrap()["sink.toml"]
        .as_str()
        .unwrap();
    assert!(sink.contains("\"max_pending\" = 2000000"), "{sink}");
}

#[test]
fn a_config_change_changes_the_checksum_and_rolls_only_that_deployment() {
    let checksums = |m: &Manifests| -> Vec<(String, String)> {
        m.of_kind("Deployment")
            .map(|d| {
                (
                    name(d).to_owned(),
                    d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect()
    };
    let base = checksums(&render(&[], &["media.s3.bucket=m"]).unwrap());
    for (set, changed) in [
        ("hub.config.client.ping_interval=20s", "rel-chorus-hub"),
        ("api.config.limits.send_per_second=9", "rel-chorus-api"),
        ("sink.config.batch.max_items=500", "rel-chorus-sink"),
        (
            "transcriber.config.model.threads=4",
            "rel-chorus-transcriber",
        ),
    ] {
        let after = checksums(&render(&[], &["media.s3.bucket=m", set]).unwrap());
        for ((n, a), (_, b)) in base.iter().zip(&after) {
            assert_eq!(
                a != b,
                n == changed,
                "{set}: checksum of {n} {}",
                if a != b { "changed" } else { "stayed" }
            );
        }
    }
}

/// The API's endpoints only the hub calls (its proxies): never routed from outside.
const HUB_PROXIES: &[&str] = &[
    "/hub/subscribe",
    "/hub/publish",
    "/hub/connect",
    "/hub/refresh",
];

#[test]
fn the_ingress_routes_the_websocket_and_the_public_api_only() {
    let m = render(&[&chart_dir().join("ci/production.yaml")], &[]).unwrap();
    let ingresses: Vec<&Value> = m.of_kind("Ingress").collect();
    assert_eq!(ingresses.len(), 1);
    let ing = ingresses[0];
    assert!(
        ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 3600
    );
    let paths = ing["spec"]["rules"][0]["http"]["paths"].as_array().unwrap();
    let mut routed = BTreeSet::new();
    for p in paths {
        let path = p["path"].as_str().unwrap();
        let svc = p["backend"]["service"]["name"].as_str().unwrap();
        let port = p["backend"]["service"]["port"]["name"].as_str().unwrap();
        routed.insert(path.to_owned());
        if path == "/connection/websocket" {
            assert_eq!(
                (svc, port, p["pathType"].as_str().unwrap()),
                ("rel-chorus-hub", "http", "Exact")
            );
            continue;
        }
        assert_eq!((svc, port), ("rel-chorus-api", "http"), "{path}");
        for &private in ["/metrics", "/health", "/api"].iter().chain(HUB_PROXIES) {
            let covered = match p["pathType"].as_str().unwrap() {
                "Exact" => private == path,
                _ => {
                    private.starts_with(path)
                        && (path == "/"
                            || private[path.len()..].is_empty()
                            || private[path.len()..].starts_with('/'))
                }
            };
            assert!(!covered, "{path} ({}) routes {private}", p["pathType"]);
        }
    }
    // Every public API route of the OpenAPI document is reachable through some rule.
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(chorus_k8s_checks::repo_root().join("docs/openapi.json")).unwrap(),
    )
    .unwrap();
    for route in doc["paths"].as_object().unwrap().keys() {
        if ["/metrics", "/health"].contains(&route.as_str())
            || HUB_PROXIES.contains(&route.as_str())
        {
            continue;
        }
        let reachable = paths.iter().any(|p| {
            let path = p["path"].as_str().unwrap();
            match p["pathType"].as_str().unwrap() {
                "Exact" => route == path,
                _ => route == path || route.starts_with(&format!("{path}/")),
            }
        });
        assert!(
            reachable,
            "the public route {route} is not routed (rules: {routed:?})"
        );
    }
    // TLS through cert-manager, for the same host.
    let cert = m.of_kind("Certificate").next().unwrap();
    assert_eq!(
        cert["spec"]["secretName"],
        ing["spec"]["tls"][0]["secretName"]
    );
    assert_eq!(cert["spec"]["dnsNames"], ing["spec"]["tls"][0]["hosts"]);
    // The hub's internal port is never exposed: its Service is separate and no rule names it.
    assert!(paths
        .iter()
        .all(|p| p["backend"]["service"]["name"] != "rel-chorus-hub-internal"));
}

#[test]
fn the_prometheus_rule_is_the_file_promtool_tests() {
    let m = render(&[&chart_dir().join("ci/production.yaml")], &[]).unwrap();
    let rule = m.of_kind("PrometheusRule").next().unwrap();
    let file: Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            chorus_k8s_checks::repo_root().join("k8s/prometheus/chorus-rules.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(rule["spec"]["groups"], file["groups"]);
    assert!(file["groups"][0]["rules"].as_array().unwrap().len() >= 10);
}

#[test]
fn the_rendered_hub_config_passes_the_hubs_own_check() {
    for (profile, m) in profiles() {
        let Some(d) = m.deployment("hub") else {
            continue;
        };
        let dir = std::env::temp_dir().join(format!(
            "chorus-checkconfig-{}-{profile}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            m.config_map(name(d)).unwrap()["config.json"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        // The pod's environment, with stand-in secret values.
        let secrets = chorus_k8s_checks::pod::Secrets::from([
            (
                "chorus".to_owned(),
                [
                    (
                        "hub-token-hmac-secret",
                        "a-hub-secret-of-at-least-32-bytes!!",
                    ),
                    ("hub-api-key", "k"),
                    ("hub-proxy-key", "p"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ),
            (
                "chorus-kafka".to_owned(),
                [("username", "u"), ("password", "123456")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
        ]);
        let env =
            chorus_k8s_checks::pod::environment(&m, container(d), &secrets, "rel-chorus-hub-abc")
                .unwrap();
        let out = std::process::Command::new(chorus_testkit::process::service_bin("chorus-hub"))
            .args(["checkconfig", "--config"])
            .arg(&path)
            .env_clear()
            .envs(env)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{profile}: chorus-hub checkconfig refused the rendered config: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
