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

/// `registry` in Prometheus' text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("invariant: text encoding cannot fail");
    String::from_utf8(buf).expect("invariant: the text format is UTF-8")
}
