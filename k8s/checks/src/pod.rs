//! A Deployment's pod, stood in for by podman containers on loopback: what the kubelet would
//! run, from the rendered manifest and nothing else. The environment is resolved the kubelet's
//! way (`secretKeyRef` from the secrets given, `fieldRef` to the pod's name, `$(VAR)` from the
//! variables before it), ConfigMap volumes become read-only bind mounts of their files,
//! `emptyDir` a tmpfs, and the security context becomes `--user`, `--read-only`,
//! `--cap-drop` and `no-new-privileges`. Services resolve to 127.0.0.1 (`--add-host`), since
//! every stand-in shares the host's network, as each pod would reach a Service's ClusterIP.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use crate::chart::{container, Manifests};

/// Secrets by name, then key: what `existingSecret` and friends would hold in a cluster.
pub type Secrets = HashMap<String, HashMap<String, String>>;

/// podman with the project's containers.conf (runc; open files within the hard limit).
fn podman() -> Command {
    let mut c = Command::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        c.env(
            "CONTAINERS_CONF",
            crate::repo_root().join("k8s/images/containers.conf"),
        );
    }
    c
}

pub struct Pod {
    pub name: String,
    dir: PathBuf,
}

impl Pod {
    /// Starts the stand-in for `component`'s Deployment in `manifests`.
    pub fn run(
        manifests: &Manifests,
        component: &str,
        secrets: &Secrets,
        hosts: &[String],
    ) -> anyhow::Result<Pod> {
        let deployment = manifests
            .deployment(component)
            .ok_or_else(|| anyhow!("no Deployment for {component}"))?;
        let spec = &deployment["spec"]["template"]["spec"];
        let c = container(deployment);
        let name = format!(
            "{}-standin-{}",
            deployment["metadata"]["name"].as_str().unwrap_or(component),
            std::process::id()
        );
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let _ = podman().args(["rm", "-f", "-t", "0", &name]).output();

        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
        args.extend(["--network".into(), "host".into()]);
        for h in hosts {
            args.extend(["--add-host".into(), format!("{h}:127.0.0.1")]);
        }
        // Security context: the pod's user and group, the container's restrictions.
        let pod_sc = &spec["securityContext"];
        if let (Some(u), Some(g)) = (pod_sc["runAsUser"].as_u64(), pod_sc["runAsGroup"].as_u64()) {
            args.extend(["--user".into(), format!("{u}:{g}")]);
        }
        let sc = &c["securityContext"];
        if sc["readOnlyRootFilesystem"] == true {
            args.push("--read-only".into());
        }
        if sc["allowPrivilegeEscalation"] == false {
            args.extend(["--security-opt".into(), "no-new-privileges".into()]);
        }
        for cap in sc["capabilities"]["drop"].as_array().into_iter().flatten() {
            args.extend(["--cap-drop".into(), cap.as_str().unwrap_or_default().into()]);
        }
        // Volumes.
        let volumes: HashMap<&str, &Value> = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["name"].as_str()?, v)))
            .collect();
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let (vol, path) = (
                m["name"].as_str().unwrap_or_default(),
                m["mountPath"].as_str().unwrap_or_default(),
            );
            let v = volumes
                .get(vol)
                .ok_or_else(|| anyhow!("volume mount {vol} names no volume"))?;
            if let Some(cm) = v["configMap"]["name"].as_str() {
                let files = manifests.config_map(cm).ok_or_else(|| {
                    anyhow!("volume {vol} names a ConfigMap {cm} the chart lacks")
                })?;
                let at = dir.join(vol);
                std::fs::create_dir_all(&at)?;
                for (file, text) in files {
                    std::fs::write(at.join(file), text.as_str().unwrap_or_default())?;
                }
                args.extend(["-v".into(), format!("{}:{path}:ro", at.display())]);
            } else if v.get("emptyDir").is_some() {
                args.extend(["--tmpfs".into(), format!("{path}:rw,mode=1777,size=256m")]);
            } else {
                bail!("volume {vol}: only configMap and emptyDir volumes are stood in for");
            }
        }
        for (k, v) in environment(manifests, c, secrets, &name)? {
            args.extend(["-e".into(), format!("{k}={v}")]);
        }
        let command = c["command"]
            .as_array()
            .ok_or_else(|| anyhow!("{component}: the container names no command"))?;
        args.extend(["--entrypoint".into(), serde_json::to_string(command)?]);
        args.push(
            c["image"]
                .as_str()
                .ok_or_else(|| anyhow!("{component}: no image"))?
                .into(),
        );
        for a in c["args"].as_array().into_iter().flatten() {
            args.push(a.as_str().unwrap_or_default().into());
        }
        let out = podman().args(&args).output().context("running podman")?;
        if !out.status.success() {
            bail!(
                "podman run for {component} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Pod { name, dir })
    }

    /// What the container printed so far.
    pub fn logs(&self) -> String {
        podman()
            .args(["logs", &self.name])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }

    /// Whether the container is still running.
    pub fn running(&self) -> bool {
        podman()
            .args(["inspect", "-f", "{{.State.Running}}", &self.name])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.name]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The container's environment, resolved as the kubelet resolves it.
pub fn environment(
    manifests: &Manifests,
    c: &Value,
    secrets: &Secrets,
    pod_name: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        if let Some(s) = from["secretRef"]["name"].as_str() {
            let keys = secrets
                .get(s)
                .ok_or_else(|| anyhow!("envFrom names a secret {s} nobody made"))?;
            env.extend(keys.iter().map(|(k, v)| (k.clone(), v.clone())));
        } else if let Some(cm) = from["configMapRef"]["name"].as_str() {
            let data = manifests
                .config_map(cm)
                .ok_or_else(|| anyhow!("envFrom names a ConfigMap {cm} the chart lacks"))?;
            env.extend(
                data.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())),
            );
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default().to_owned();
        let value = if let Some(v) = e["value"].as_str() {
            expand(v, &env)
        } else if let Some(r) = e["valueFrom"].get("secretKeyRef") {
            let (s, k) = (
                r["name"].as_str().unwrap_or_default(),
                r["key"].as_str().unwrap_or_default(),
            );
            match secrets.get(s).and_then(|keys| keys.get(k)) {
                Some(v) => v.clone(),
                None if r["optional"] == true => continue,
                None => bail!("env {name}: secret {s} has no key {k}"),
            }
        } else if let Some(f) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match f {
                "metadata.name" => pod_name.to_owned(),
                "metadata.namespace" => "default".to_owned(),
                other => bail!("env {name}: fieldRef {other} is not stood in for"),
            }
        } else {
            String::new()
        };
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    }
    Ok(env)
}

/// `$(VAR)` replaced by an earlier variable's value; unknown references stay, as in Kubernetes.
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) => {
                let var = &after[..end];
                match env.iter().rev().find(|(k, _)| k == var) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let env = vec![("A".to_owned(), "x".to_owned())];
        assert_eq!(expand(r#"{"k": "$(A)"}"#, &env), r#"{"k": "x"}"#);
        assert_eq!(expand("$(B)-$(A)", &env), "$(B)-x");
        assert_eq!(expand("$(A", &env), "$(A");
    }
}
