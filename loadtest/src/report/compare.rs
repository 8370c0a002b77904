//! Side by side: the same scenarios run against two servers, with the ratios the targets
//! are stated in (memory per connection, deliveries per server CPU-second, p99 latency).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

/// The metrics compared, where to find them in a report, and which direction is better.
const METRICS: &[(&str, &str, Better)] = &[
    (
        "server RSS per connection (bytes)",
        "/bytes_per_connection",
        Better::Lower,
    ),
    (
        "deliveries per second",
        "/deliveries_per_sec",
        Better::Higher,
    ),
    (
        "deliveries per server CPU-second",
        "/deliveries_per_server_cpu_sec",
        Better::Higher,
    ),
    ("latency p50 (ms)", "/latency_ms/p50", Better::Lower),
    ("latency p99 (ms)", "/latency_ms/p99", Better::Lower),
    ("lost + duplicated", "/lost", Better::Lower),
];

#[derive(Clone, Copy)]
enum Better {
    Lower,
    Higher,
}

/// Renders a Markdown table comparing `ours` with `theirs` (labels as in the reports).
pub fn render(files: &[PathBuf], ours: &str, theirs: &str) -> anyhow::Result<String> {
    let mut by: BTreeMap<(String, String), Value> = BTreeMap::new();
    for f in files {
        let v: Value = serde_json::from_slice(
            &std::fs::read(f).with_context(|| format!("read {}", f.display()))?,
        )
        .with_context(|| format!("parse {}", f.display()))?;
        let scenario = v["scenario"].as_str().unwrap_or("?").to_string();
        let label = v["label"].as_str().unwrap_or("").to_string();
        by.insert((scenario, label), v);
    }
    let scenarios: Vec<String> = by
        .keys()
        .map(|(s, _)| s.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| scenario | metric | {ours} | {theirs} | {ours} ÷ {theirs} |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|");
    for scenario in scenarios {
        let (Some(a), Some(b)) = (
            by.get(&(scenario.clone(), ours.to_string())),
            by.get(&(scenario.clone(), theirs.to_string())),
        ) else {
            continue;
        };
        for (name, pointer, _) in METRICS {
            let (x, y) = (number(a, pointer), number(b, pointer));
            if x.is_none() && y.is_none() {
                continue;
            }
            if *pointer == "/lost" {
                let sum = |v: &Value| {
                    number(v, "/lost").unwrap_or(0.0) + number(v, "/duplicated").unwrap_or(0.0)
                };
                let _ = writeln!(s, "| {scenario} | {name} | {} | {} | |", sum(a), sum(b));
                continue;
            }
            if scenario == "idle" && !pointer.contains("bytes") {
                continue;
            }
            let ratio = match (x, y) {
                (Some(x), Some(y)) if y != 0.0 => format!("{:.2}×", x / y),
                _ => "n/a".into(),
            };
            let _ = writeln!(
                s,
                "| {scenario} | {name} | {} | {} | {ratio} |",
                fmt(x),
                fmt(y)
            );
        }
    }
    Ok(s)
}

fn number(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64)
}

fn fmt(x: Option<f64>) -> String {
    match x {
        Some(x) if x >= 100.0 || x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "n/a".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_ours_over_theirs_per_scenario() {
        let dir = std::env::temp_dir().join(format!("compare-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let a = dir.join("a.json");
        let b = dir.join("b.json");
        std::fs::write(&a, r#"{"scenario":"broadcast","label":"chorus","bytes_per_connection":3000,"deliveries_per_server_cpu_sec":90000,"latency_ms":{"p50":50,"p99":100},"lost":0,"duplicated":0}"#).expect("write");
        std::fs::write(&b, r#"{"scenario":"broadcast","label":"sockudo","bytes_per_connection":150000,"deliveries_per_server_cpu_sec":45000,"latency_ms":{"p50":200,"p99":400},"lost":0,"duplicated":0}"#).expect("write");
        let table = render(&[a, b], "chorus", "sockudo").expect("renders");
        assert!(
            table.contains(
                "| broadcast | deliveries per server CPU-second | 90000 | 45000 | 2.00× |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| broadcast | server RSS per connection (bytes) | 3000 | 150000 | 0.02× |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| broadcast | latency p99 (ms) | 100 | 400 | 0.25× |"),
            "{table}"
        );
    }
}
