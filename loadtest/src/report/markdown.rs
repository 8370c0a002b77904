//! The Markdown summary of one run.

use std::fmt::Write;

use super::Report;

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let title = if r.label.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.label)
    };
    let _ = writeln!(s, "### {:?}{title}\n", r.scenario);
    let _ = writeln!(s, "| metric | value |\n|---|---|");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "| {k} | {v} |");
    };
    row("protocol", format!("{:?}", r.protocol));
    row(
        "connections",
        format!(
            "{} of {} ({} worker processes)",
            r.connections, r.connections_requested, r.workers
        ),
    );
    row("connect errors", r.connect_errors.to_string());
    row(
        "connect latency p50 / p99",
        format!(
            "{:.1} / {:.1} ms",
            r.connect_latency_ms.p50, r.connect_latency_ms.p99
        ),
    );
    row("channels", r.channels.to_string());
    if let Some(b) = r.bytes_per_connection {
        row("server RSS per connection", format!("{:.0} bytes", b));
    }
    if let Some(srv) = &r.server {
        row(
            "server RSS baseline → loaded (peak)",
            format!(
                "{:.1} → {:.1} MiB ({:.1} MiB)",
                mib(srv.rss_baseline_bytes),
                mib(srv.rss_loaded_bytes),
                mib(srv.rss_peak_bytes)
            ),
        );
    }
    if r.publications > 0 {
        row(
            "publications",
            format!(
                "{} at {:.1}/s (asked {:.1}/s), {} errors",
                r.publications, r.publish_rate_achieved, r.publish_rate, r.publish_errors
            ),
        );
        row("payload", format!("{} bytes", r.payload_bytes));
        row(
            "delivered / expected",
            format!("{} / {}", r.delivered, r.expected_deliveries),
        );
        row(
            "deliveries per second",
            format!("{:.0}", r.deliveries_per_sec),
        );
        if let Some(d) = r.deliveries_per_server_cpu_sec {
            row("deliveries per server CPU-second", format!("{d:.0}"));
        }
        if r.delivered > 0 && r.bytes_received > 0 {
            row(
                "bytes received per delivery",
                format!("{:.1}", r.bytes_received as f64 / r.delivered as f64),
            );
        }
        let l = &r.latency_ms;
        row(
            "latency p50 / p90 / p99 / p99.9 / max",
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} / {:.2} ms",
                l.p50, l.p90, l.p99, l.p999, l.max
            ),
        );
        if let Some(f) = &r.kafka_floor_latency_ms {
            row(
                "bare Kafka consumer (floor) p50 / p90 / p99 / p99.9 / max",
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2} / {:.2} ms ({} records)",
                    f.p50, f.p90, f.p99, f.p999, f.max, f.count
                ),
            );
            row(
                "added by the hub at p50 / p99",
                format!("{:.2} / {:.2} ms", l.p50 - f.p50, l.p99 - f.p99),
            );
        }
    }
    row(
        "lost / duplicated / reordered",
        format!("{} / {} / {}", r.lost, r.duplicated, r.reordered),
    );
    row(
        "unexpected disconnects",
        if r.unexpected_disconnects == 0 {
            "0".into()
        } else {
            format!(
                "{} {:?}",
                r.unexpected_disconnects, r.unexpected_disconnects_by_code
            )
        },
    );
    s
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}
