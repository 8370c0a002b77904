//! Prometheus helpers every service's metrics use: a metric registered as it is built, and a
//! registry rendered for `/metrics`. Names follow `chorus_<component>_<thing>_<unit>`.

use prometheus::{Encoder, Registry, TextEncoder};

/// `m`, registered in `registry`.
pub fn registered<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    m: T,
) -> T {
    registry
        .register(Box::new(m.clone()))
        .expect("invariant: metric names are unique");
    m
}

/// `m` with a series at 0 for each of `values` (one label): a dashboard's `rate()` of an error
/// that never happened reads 0, not "no data", and a misspelt metric still reads no data.
pub fn with_zeros(m: prometheus::IntCounterVec, values: &[&str]) -> prometheus::IntCounterVec {
    for v in values {
        m.with_label_values(&[v]);
    }
    m
}

/// `registry` in Prometheus' text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("invariant: text encoding cannot fail");
    String::from_utf8(buf).expect("invariant: the text format is UTF-8")
}

/// Registers the standard `process_*` metrics (resident memory, CPU seconds, open files and
/// their limit, threads, start time) and `<service>_build_info{version, ...} 1` in `registry`.
/// Open files matter most to the hub, whose connections each hold one.
pub fn process_and_build_info(
    registry: &Registry,
    service: &str,
    version: &str,
    labels: &[(&str, &str)],
) {
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("invariant: the process collector registers once");
    let mut names = vec!["version"];
    names.extend(labels.iter().map(|(k, _)| *k));
    let info = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            format!("{service}_build_info"),
            "Always 1; the labels say which build runs",
        ),
        &names,
    )
    .expect("invariant: valid metric");
    let mut values = vec![version];
    values.extend(labels.iter().map(|(_, v)| *v));
    info.with_label_values(&values).set(1);
    registry
        .register(Box::new(info))
        .expect("invariant: build info registers once");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_and_build_info_are_exported() {
        let registry = Registry::new();
        process_and_build_info(&registry, "chorus_test", "1.2.3", &[("engine", "memory")]);
        let text = render(&registry);
        for name in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_max_fds ",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(
            text.contains(r#"chorus_test_build_info{engine="memory",version="1.2.3"} 1"#),
            "{text}"
        );
    }
}
