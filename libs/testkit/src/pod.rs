//! A network namespace of a test's own (a "pod"), joined to the host by a veth pair, in which a
//! service runs unchanged on 127.0.0.1, so that a test can cut, thin or slow the network
//! between that one service and the rest while every other process stays on loopback.
//!
//! Why the NAT: every service and fixture here listens and dials on 127.0.0.1. Inside the pod,
//! a new connection to 127.0.0.1 (Redis, Kafka, the API...) is sent over the veth to the host
//! and lands on the host's 127.0.0.1; on the host, a connection to 127.0.0.1 on a port the
//! pod [`Pod::expose`]s lands on the pod's 127.0.0.1. Both sides need `route_localnet` on their
//! veth end to route 127/8 over it; the source is rewritten to the veth address on the way
//! out, and to 127.0.0.1 on the way in, so a server sees a loopback peer as before (Redis's
//! protected mode and `pg_hba.conf` let only those in). So configs, ports and readiness
//! checks stay as they are, and the pod's traffic crosses
//! a real link on which [`Pod::impair`] puts kernel rules (iptables: DROP, `statistic` random
//! loss, NFQUEUE into [`crate::delay`] for latency; the kernel here has no `sch_netem`).
//!
//! Needs root. Everything is removed on drop (the namespace, the veth pair, the host's
//! table); a namespace left by a killed test is named `chorus-<pid>-<n>` and the veth on the host
//! `chv<pid>n<n>`: `scripts/lib/faults.sh` removes those whose pid is gone.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::delay::Delay;

/// Which of the pod's connections a rule applies to, by the port on the far side or its own.
#[derive(Clone, Copy, Debug)]
pub enum Link {
    /// The pod's connections to a service on the host listening on this port (Redis, Kafka,
    /// the API's proxies).
    ToHost(u16),
    /// Connections from the host to this port, served by the process in the pod (the hub's
    /// clients).
    FromHost(u16),
}

/// Which packets of a link: the pod's outgoing, its incoming, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    Both,
    /// Only what the pod sends (its requests reach nobody; the answers could come back).
    Out,
    /// Only what the pod receives (its requests arrive; no answer comes back).
    In,
}

/// What happens to the packets of a link.
#[derive(Clone, Copy, Debug)]
pub enum Impairment {
    /// Every packet dropped: a partition, the sockets stay open on both sides.
    Cut,
    /// This percentage of packets dropped at random.
    Loss(u32),
    /// Every packet held this many milliseconds before it goes on.
    Delay(u64),
}

pub struct Pod {
    name: String,
    host_if: String,
    table: String,
    host_addr: String,
    pod_addr: String,
    /// The latency shims running for this pod's impairments.
    delays: Vec<Delay>,
    next_queue: u16,
}

static PODS: AtomicU32 = AtomicU32::new(0);

impl Pod {
    /// A new namespace with its veth pair and NAT; panics (with the command's words) when it
    /// cannot be made, for example without root.
    pub fn create() -> Pod {
        let n = PODS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // A /30 per pod from 10.64.0.0/10, picked by pid and count so that two test
        // processes' pods do not share one.
        let slot = (pid.wrapping_mul(64).wrapping_add(n)) % (1 << 20);
        let (a, b, c) = (64 + (slot >> 14), (slot >> 6) & 255, (slot & 63) << 2);
        let host_addr = format!("10.{a}.{b}.{}", c + 1);
        let pod_addr = format!("10.{a}.{b}.{}", c + 2);
        let name = format!("chorus-{pid}-{n}");
        let host_if = format!("chv{pid}n{n}");
        let pod_if = "eth0".to_owned();
        let table = format!("chorus_pod_{pid}_{n}");
        let pod = Pod {
            name,
            host_if,
            table,
            host_addr,
            pod_addr,
            delays: Vec::new(),
            next_queue: 0,
        };
        pod.host(&["ip", "netns", "add", &pod.name]);
        let peer = format!("{}p", pod.host_if);
        pod.host(&[
            "ip",
            "link",
            "add",
            &pod.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        pod.host(&["ip", "link", "set", &peer, "netns", &pod.name]);
        pod.inside(&["ip", "link", "set", &peer, "name", &pod_if]);
        pod.host(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", pod.host_addr),
            "dev",
            &pod.host_if,
        ]);
        pod.host(&["ip", "link", "set", &pod.host_if, "up"]);
        pod.host(&[
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.{}.route_localnet=1", pod.host_if),
            // Only what arrives on this veth may be forwarded (pod to pod); the host's own
            // `ip_forward` stays as it is.
            &format!("net.ipv4.conf.{}.forwarding=1", pod.host_if),
        ]);
        pod.inside(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", pod.pod_addr),
            "dev",
            &pod_if,
        ]);
        pod.inside(&["ip", "link", "set", "lo", "up"]);
        pod.inside(&["ip", "link", "set", &pod_if, "up"]);
        pod.inside(&["ip", "route", "add", "default", "via", &pod.host_addr]);
        pod.inside(&[
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.{pod_if}.route_localnet=1"),
        ]);
        // Host: 127.0.0.1:<exposed port> goes to the pod, also from another pod (`across`,
        // before `pre`: the first NAT chain to match decides); what else comes from the pod to
        // the host's veth address goes to the host's 127.0.0.1.
        pod.nft_host(&format!(
            "table ip {t} {{
              set ports {{ type inet_service; }}
              chain out {{ type nat hook output priority -100; ip daddr 127.0.0.1 tcp dport @ports dnat to {p}; }}
              chain across {{ type nat hook prerouting priority -110; iifname \"chv*\" tcp dport @ports dnat to {p}; }}
              chain pre {{ type nat hook prerouting priority -100; iifname \"{i}\" ip daddr {h} dnat to 127.0.0.1; }}
              chain post {{ type nat hook postrouting priority 100; oifname \"{i}\" ip saddr 127.0.0.0/8 snat to {h}; }}
              chain local {{ type nat hook input priority 100; iifname \"{i}\" ip daddr 127.0.0.1 snat to 127.0.0.1; }}
            }}",
            t = pod.table,
            p = pod.pod_addr,
            h = pod.host_addr,
            i = pod.host_if,
        ));
        // Pod: every new connection to 127.0.0.1 goes to the host (the pod's own process
        // dials only services on the host); what comes in goes to the pod's 127.0.0.1.
        pod.nft_inside(&format!(
            "table ip pod {{
              chain out {{ type nat hook output priority -100; ip daddr 127.0.0.1 dnat to {h}; }}
              chain pre {{ type nat hook prerouting priority -100; iifname \"{pod_if}\" ip daddr {p} dnat to 127.0.0.1; }}
              chain post {{ type nat hook postrouting priority 100; oifname \"{pod_if}\" ip saddr 127.0.0.0/8 snat to {p}; }}
              chain local {{ type nat hook input priority 100; iifname \"{pod_if}\" ip daddr 127.0.0.1 snat to 127.0.0.1; }}
            }}",
            h = pod.host_addr,
            p = pod.pod_addr,
        ));
        pod
    }

    /// The namespace's name, for `ip netns exec` ([`crate::process::ServiceProcess`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connections from the host to 127.0.0.1:`port` reach the pod's process on that port.
    pub fn expose(&self, port: u16) {
        self.host(&[
            "nft",
            "add",
            "element",
            "ip",
            &self.table,
            "ports",
            &format!("{{ {port} }}"),
        ]);
    }

    /// Puts `impairment` on the packets of `link` going `way`, on top of any already there.
    pub fn impair(&mut self, link: Link, way: Way, impairment: Impairment) {
        let (out_side, in_side, port) = match link {
            Link::ToHost(p) => ("--dport", "--sport", p.to_string()),
            Link::FromHost(p) => ("--sport", "--dport", p.to_string()),
        };
        let queue = match impairment {
            Impairment::Delay(ms) => {
                let q = self.next_queue;
                self.next_queue += 1;
                self.delays.push(Delay::start(&self.name, q, ms));
                Some(q)
            }
            _ => None,
        };
        let target: Vec<String> = match impairment {
            Impairment::Cut => vec!["-j".into(), "DROP".into()],
            Impairment::Loss(pct) => [
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &format!("{:.4}", f64::from(pct) / 100.0),
                "-j",
                "DROP",
            ]
            .map(String::from)
            .to_vec(),
            // --queue-bypass: if the shim is gone, packets pass instead of vanishing.
            Impairment::Delay(_) => [
                "-j",
                "NFQUEUE",
                "--queue-num",
                &queue.unwrap_or(0).to_string(),
                "--queue-bypass",
            ]
            .map(String::from)
            .to_vec(),
        };
        let mut rules = Vec::new();
        if way != Way::In {
            rules.push(("OUTPUT", out_side));
        }
        if way != Way::Out {
            rules.push(("INPUT", in_side));
        }
        for (chain, side) in rules {
            let mut args: Vec<String> = ["iptables", "-w", "-A", chain, "-p", "tcp", side, &port]
                .map(String::from)
                .to_vec();
            args.extend(target.iter().cloned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.inside(&args);
        }
    }

    /// Every impairment removed: packets flow again, connections that survived go on.
    pub fn heal(&mut self) {
        self.inside(&["iptables", "-w", "-F", "INPUT"]);
        self.inside(&["iptables", "-w", "-F", "OUTPUT"]);
        // After the rules: a queued packet's shim stays until no rule feeds it.
        for d in self.delays.drain(..) {
            d.stop();
        }
        self.next_queue = 0;
    }

    fn host(&self, args: &[&str]) {
        run(args);
    }

    fn inside(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all);
    }

    fn nft_host(&self, script: &str) {
        nft(&[], script);
    }

    fn nft_inside(&self, script: &str) {
        nft(&["ip", "netns", "exec", &self.name], script);
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for d in self.delays.drain(..) {
            d.stop();
        }
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .status();
        // The veth pair goes with its end in the namespace.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "delete", &self.host_if])
            .output();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{} could not run: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`{}` failed (a pod needs root, ip, nft and iptables): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nft(prefix: &[&str], script: &str) {
    use std::io::Write;
    let mut args: Vec<&str> = prefix.to_vec();
    args.extend(["nft", "-f", "-"]);
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft refused the pod's NAT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
