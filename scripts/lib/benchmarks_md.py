"""Writes docs/benchmarks.md from the results scripts/bench collected (stdout).

Usage: benchmarks_md.py WORK_DIR CHART_DIR --sockudo-version V --idle N --bcast N --bcast-rate R
       --rooms N --rooms-rate R --duration S
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess

p = argparse.ArgumentParser()
p.add_argument("work")
p.add_argument("charts")
for flag in ["--sockudo-version", "--idle", "--bcast", "--bcast-rate", "--rooms", "--rooms-rate", "--duration", "--paced-rate"]:
    p.add_argument(flag, required=True)
a = p.parse_args()


def load(name):
    path = os.path.join(a.work, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def read(name):
    path = os.path.join(a.work, name)
    return open(path).read() if os.path.exists(path) else ""


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def mem_gib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            return int(line.split()[1]) / 1024 / 1024
    return 0


# What profiling found and changed, recorded once when it was done (not re-measured by this
# script; the figures above are).
HISTORY = """## Profiling log (2026-11-22, issue 3)

Idle memory was the target the first harness run missed: 18,000 idle connections cost
**5,111 bytes** each. heaptrack on 5,000 connections put the peak heap per connection at: the
connection task 2,033 B, the tungstenite read buffer 1,017 B, tokio's socket registration 256 B,
hash tables (channel map, per-channel subscriber maps, client registries) ~340 B, the session's
subscription vector 243 B, tungstenite's write buffer 208 B, the outbound queue 123 B.
`-Zprint-type-sizes` showed the connection's `async fn` kept its 368-byte socket twice (as an
argument and as a local). Changes, each measured with the idle scenario at 18,000 connections:

| change | bytes per connection |
|---|---:|
| before | 5,111 |
| `serve` returns an `async move` block, so the socket is stored once (future 1,456 → 1,080 B); flush and close futures boxed | 4,611 |
| `websocket.read_buffer_size` default 1,024 → 512 (the value Centrifugo's docs suggest for memory) | 4,098 |
| channel subscribers in an exactly-sized vector up to 32 (a map past that); the outbound queue frees its buffer when drained; the session's subscription vector sized exactly | 3,664 |

Broadcast CPU was profiled with `perf record` at 100k deliveries/s: 65% of the hub's CPU is in
the kernel (`sendmsg` on loopback runs the receiver's TCP input too), ~28% in the hub itself
spread over tokio scheduling, the waker, tungstenite framing and malloc. Replacing tokio's
`Notify` per connection with a flag plus an `AtomicWaker`, and the per-connection shutdown
waiter with a roster walked once at shutdown, removed two shared waiter-list locks from every
wake-up but moved deliveries per CPU-second only within noise (76k → 78k with a one-thread
harness). The first version of that flag woke on every push; making a burst of pushes flip it
once brought the fan-out micro-benchmark from 327 µs back to 248 µs per 10k (it was 277 µs with
`Notify`). Running the harness's workers with two threads (as `scripts/bench` now does) is what
cut broadcast p99 from ~460 ms to ~165 ms: the harness was the slower reader.
"""

runs = {(s, sc): load(f"{s}-{sc}") for s in ["chorus", "sockudo", "chorus-paced", "sockudo-paced", "chorus-1k", "sockudo-1k"] for sc in ["idle", "broadcast", "rooms"]}
out = []
w = out.append

w("# Benchmarks\n")
w("Benchmarks are not tests: nothing here is asserted in CI (CI runs a 300-connection smoke")
w("scenario that checks correctness only). This file is written by `scripts/bench`; run it to")
w("reproduce every figure below on your machine.\n")

w("## Setup\n")
w(f"- Written {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
  f" at commit `{sh('git rev-parse --short HEAD')}`.")
w(f"- Machine: {os.cpu_count()} × {cpu_model()}, {mem_gib():.0f} GiB RAM, Linux {platform.release()},"
  f" open-files limit {sh('ulimit -Hn')} per process.")
w(f"- Toolchain: {sh('rustc -V')}, release profile. Sockudo {a.sockudo_version} (`cargo install sockudo --locked`).")
w("- Everything on one machine over loopback: the server, the `chorus-loadtest` coordinator and its")
w("  worker processes share the same 2 cores, so every latency figure includes the harness")
w("  competing with the server for CPU. Connections are spread over source addresses")
w("  127.0.0.1–127.0.0.200; the publisher goes through each server's HTTP API; payloads are 128 bytes.")
w("- Each scenario runs against a freshly started server, so its memory baseline is an empty server.")
w("  Memory per connection is (server RSS with the connections open − RSS before connecting) ÷")
w("  connections, read from `/proc/<pid>/stat`; CPU is the server's user+system time from the first")
w("  publication to the last delivery.")
w(f"- Scenarios: **idle** {a.idle} connections, each subscribed to its own channel, held 10 s;")
w(f"  **broadcast** {a.bcast} subscribers of one channel, {a.bcast_rate} publications/s"
  f" ({int(a.bcast) * float(a.bcast_rate):,.0f} deliveries/s offered) for {a.duration} s, and again at"
  f" {a.paced_rate}/s (**paced**, the rate Sockudo sustains, for a like-for-like comparison), and the same"
  f" deliveries/s as 1,000 subscribers at {int(float(a.bcast_rate) * int(a.bcast) / 1000)}/s (**1k**, bursts a tenth the size);")
w(f"  **rooms** {a.rooms} connections in rooms of 2–50 members, {a.rooms_rate} publications/s to random rooms for {a.duration} s.")
w("- Chorus config: `.run/bench/hub.json` (defaults plus a token secret, an API key and client")
w("  subscribe allowed). Sockudo: default config by environment, limits raised for a benchmark")
w("  (`SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS`, `..._MAX_BACKEND_EVENTS_PER_SECOND`, `RATE_LIMITER_ENABLED=false`).\n")


def g(run, *path):
    v = run
    for k in path:
        if v is None:
            return None
        v = v.get(k)
    return v


def ratio(x, y):
    return x / y if x is not None and y else None


w("## Targets\n")
w("| target | measured | |")
w("|---|---|---|")
ci, cb, si, sb = runs[("chorus", "idle")], runs[("chorus", "broadcast")], runs[("sockudo", "idle")], runs[("sockudo", "broadcast")]
bpc = g(ci, "bytes_per_connection")
if ci:
    w(f"| idle: 18k subscribed connections on one hub at ≤ 4 KB RSS each | {g(ci,'connections')} connections,"
      f" {bpc:.0f} bytes each | {'met' if bpc is not None and bpc <= 4096 and g(ci,'connections') >= 18000 else 'missed'} |")
if cb:
    offered = int(a.bcast) * float(a.bcast_rate)
    dps, p99 = g(cb, "deliveries_per_sec"), g(cb, "latency_ms", "p99")
    clean = g(cb, "lost") == 0 and g(cb, "duplicated") == 0 and g(cb, "delivered") == g(cb, "expected_deliveries")
    w(f"| broadcast: 10k subscribers at 100k deliveries/s | {g(cb,'connections')} subscribers, {dps:,.0f} deliveries/s"
      f" sustained of {offered:,.0f} offered, {'none lost' if clean else 'LOSS'} | {'met' if dps >= 0.95 * offered and clean else 'missed'} |")
    w(f"| broadcast: p99 delivery latency ≤ 25 ms at that rate | p99 {p99:.1f} ms (p50 {g(cb,'latency_ms','p50'):.1f} ms)"
      f" | {'met' if p99 <= 25 else 'missed'} |")
c1k = runs[("chorus-1k", "broadcast")]
if c1k:
    w(f"| (context) p99 at the same deliveries/s in bursts of 1,000 subscribers | {g(c1k,'deliveries_per_sec'):,.0f} deliveries/s,"
      f" p99 {g(c1k,'latency_ms','p99'):.1f} ms (p50 {g(c1k,'latency_ms','p50'):.1f} ms) | {'within 25 ms' if g(c1k,'latency_ms','p99') <= 25 else 'over 25 ms'} |")
cpu = ratio(g(cb, "deliveries_per_server_cpu_sec"), g(sb, "deliveries_per_server_cpu_sec"))
cpu_paced = ratio(g(runs[("chorus-paced", "broadcast")], "deliveries_per_server_cpu_sec"),
                  g(runs[("sockudo-paced", "broadcast")], "deliveries_per_server_cpu_sec"))
mem = ratio(g(ci, "bytes_per_connection"), g(si, "bytes_per_connection"))
if cpu is not None:
    w(f"| ≥ 2× Sockudo's deliveries per server CPU-second (broadcast) | {cpu:.2f}× | {'met' if cpu >= 2 else 'missed'} |")
if cpu_paced is not None:
    w(f"| the same at equal offered load (paced broadcast) | {cpu_paced:.2f}× | {'met' if cpu_paced >= 2 else 'missed'} |")
if mem is not None:
    w(f"| ≤ 0.5× Sockudo's memory per connection (idle) | {mem:.3f}× | {'met' if mem <= 0.5 else 'missed'} |")
w("")

w("## Chorus and Sockudo side by side\n")
w("Ratios are Chorus ÷ Sockudo: below 1 is better for memory and latency, above 1 for throughput.\n")
w(read("compare.md"))
paced = read("compare-paced.md")
if paced.count("\n") > 2:
    w(f"At equal offered load: broadcast at {a.paced_rate} publications/s to both servers.\n")
    w(paced)
k1 = read("compare-1k.md")
if k1.count("\n") > 2:
    w("The same deliveries per second in smaller bursts: 1,000 subscribers, ten times the publications.\n")
    w(k1)

if cb:
    us = 1e6 / g(cb, "deliveries_per_server_cpu_sec")
    w("## Why broadcast latency is what it is\n")
    w(f"Each delivery is one WebSocket frame written to one TCP socket. Chorus spends {us:.1f} µs of server CPU")
    w("per delivery here, most of it in the kernel: on loopback the sender's `sendmsg` also runs the")
    w("receiver's TCP input path. One publication to "
      f"{int(a.bcast):,} subscribers is therefore about {us * int(a.bcast) / 1000:.0f} ms of CPU, spread over 2 cores that the")
    w("harness (which reads the same frames) also needs. The last subscriber of a burst cannot be served")
    w("sooner than that, so p99 tracks the burst's CPU cost, not queueing inside the hub (the 1k run above")
    w("carries the same deliveries per second in bursts a tenth the size, and its p99 drops accordingly); a p99 of 25 ms")
    w(f"at {int(a.bcast):,} subscribers needs either more cores or a per-delivery cost near"
      f" {25000 * 2 / int(a.bcast):.1f} µs for server and harness together.")
    if sb:
        w(f"Sockudo shows the same shape with a larger cost per delivery ({1e6 / g(sb, 'deliveries_per_server_cpu_sec'):.1f} µs)."
          f" Its HTTP publish returns only after its fan-out, so on one channel it took"
          f" {g(sb, 'publish_rate_achieved'):.1f} of the {a.bcast_rate} publications/s asked; the paced runs compare")
        w("both servers at the rate it does sustain.")
    w("")
    if sb:
        theirs = 1e6 / g(sb, "deliveries_per_server_cpu_sec")
        w("## Why deliveries per CPU-second are not 2× Sockudo's\n")
        w(f"Both servers pay the kernel for every send. Profiling Chorus (see the log below) put about 65% of its")
        w(f"CPU in the kernel, about {0.65 * us:.1f} µs of its {us:.1f} µs per delivery. Sockudo spent {theirs:.1f} µs per")
        w(f"delivery in this run, so 2× its rate would need Chorus at {theirs / 2:.1f} µs per delivery, which is")
        w("at or below the cost of the send syscalls alone. Twice the efficiency is reachable only by sending")
        w("fewer frames (several publications per frame, which the protocol allows when they queue up), not")
        w("by trimming the hub's own code further. Sockudo's efficiency also rises with its publish rate,")
        w("which varies from run to run (its publish call waits for its fan-out), so this ratio moves between")
        w("runs more than the others.\n")

w(HISTORY)

w("## Runs\n")
for server in ["chorus", "chorus-paced", "chorus-1k", "sockudo", "sockudo-paced", "sockudo-1k"]:
    for sc in ["idle", "broadcast", "rooms"]:
        md = read(f"{server}-{sc}.md")
        if not md:
            continue
        w(md)
        chart = f"{server}-{sc}.png"
        if os.path.exists(os.path.join(a.charts, chart)):
            w(f"![{server} {sc}](benchmarks/{chart})\n")
w("JSON results: `docs/benchmarks/<server>-<scenario>.json`.\n")

w("## Micro-benchmarks (criterion)\n")
w("Command: `cargo bench -p chorus-protocol --bench codec -p chorus-hub --bench fanout -- --warm-up-time 1 --measurement-time 3`\n")
w("| bench | time (lower bound, estimate, upper bound) |")
w("|---|---|")
name = None
for line in read("criterion.txt").splitlines():
    m = re.match(r"^(\S.*?)\s+time:\s+\[(.*)\]", line)
    if m:
        w(f"| `{m.group(1).strip()}` | {m.group(2)} |")
        name = None
        continue
    m = re.match(r"^\s+time:\s+\[(.*)\]", line)
    if m:
        # The first time line after a name is the measurement; later ones are changes.
        if name:
            w(f"| `{name}` | {m.group(1)} |")
        name = None
        continue
    if line and not line[0].isspace() and not line.startswith(("Benchmarking", "Found", "Gnuplot", "Warning")):
        name = line.strip()
w("\n`fanout/encode_and_queue_to_10k_subscribers` covers the hub's side only (encode once, queue the")
w("shared bytes to 10,000 local subscribers); socket writes are what the load runs above measure.")
# The Kafka run has its own script; its section is kept when this page is regenerated.
kafka = os.path.join("docs", "benchmarks", "kafka.md")
if os.path.exists(kafka):
    w("")
    w(open(kafka).read().rstrip())
# So is the Redis engine's (scripts/bench-redis).
redis = os.path.join("docs", "benchmarks", "redis.md")
if os.path.exists(redis):
    w("")
    w(open(redis).read().rstrip())
# Its scale-out parts: shards, Kafka read once, the capacity model.
redis_scale = os.path.join("docs", "benchmarks", "redis-scale.md")
if os.path.exists(redis_scale):
    w("")
    w(open(redis_scale).read().rstrip())
# And the sink's (scripts/bench-sink).
sink = os.path.join("docs", "benchmarks", "sink.md")
if os.path.exists(sink):
    w("")
    w(open(sink).read().rstrip())
# And the transcriber's (scripts/bench-transcriber).
transcriber = os.path.join("docs", "benchmarks", "transcriber.md")
if os.path.exists(transcriber):
    w("")
    w(open(transcriber).read().rstrip())
# And JSON against Protobuf (scripts/bench-protocols).
protocols = os.path.join("docs", "benchmarks", "protocols.md")
if os.path.exists(protocols):
    w("")
    w(open(protocols).read().rstrip())
print("\n".join(out))
