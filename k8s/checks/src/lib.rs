//! Checks of what `k8s/` ships, against real things on one machine (there is no cluster here):
//!
//! - [`chart`]: `helm template` of `k8s/chart/chorus` parsed into manifests, and lookups over
//!   them (a Deployment's container, a Service's ports, a ConfigMap's files);
//! - [`pod`]: a Deployment's pod run as podman containers on loopback, from the rendered
//!   command, arguments, environment (secrets, field references and `$(VAR)` expansion
//!   resolved as the kubelet does) and mounted ConfigMaps, with the pod's security context;
//! - [`prometheus`]: Debian's Prometheus on loopback, scraping the pods, and the dashboard's
//!   queries run against it.
//!
//! The tests are in `tests/chart.rs` (manifests) and `tests/pods.rs` (the images end to end).

pub mod chart;
pub mod pod;
pub mod prometheus;

use std::path::PathBuf;

/// The repository's root (this crate is `k8s/checks`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("invariant: the crate sits in the repository")
}
