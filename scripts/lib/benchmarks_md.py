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
for flag in ["--sockudo-version", "--idle", "--bcast", "--bcast-rate", "--rooms", "--rooms-rate", "--duration", "--paced-rate",
             "--dense", "--dense-rate", "--write-delay", "--rounds"]:
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

Broadcast CPU was profiled with `perf record` at 100k deliveries/s: 65% of the hub's CPU was in
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

LABELS = ["floor", "chorus", "sockudo", "floor-paced", "chorus-paced", "sockudo-paced", "floor-1k", "chorus-1k",
          "sockudo-1k", "floor-dense", "chorus-dense", "chorus-delay", "chorus-delay-1k", "chorus-delay-dense"]
HISTORY_24 = """## Profiling log (2026-12-04, issue 24: close to the floor)

Measured with `SERVERS="floor chorus" SCENARIOS="idle broadcast rooms" DURATION=10 CRITERION=0
scripts/bench`, floor and Chorus minutes apart in one run; the floor's own figures moved by a few
percent between runs, so each row compares within its run.

| step | idle B/conn (floor) | broadcast deliveries/CPU-s (÷ floor) | rooms deliveries/CPU-s (÷ floor) | broadcast p99 (÷ floor) |
|---|---:|---:|---:|---:|
| before: axum's WebSocket (tungstenite), every delivery queued and written by its connection task | 4,560 (1,868) | 103,413 (0.77×) | 66,139 (0.77×) | 131.3 ms (1.11×) |
| the hub frames WebSockets itself on the shared socket; the fan-out writes each publication, framed once, straight to every idle subscriber's socket | 3,015 | 127,877 (0.96× the earlier floor run) | 79,311 (0.92×) | 128.5 ms (1.08×) |
| readiness polled, not awaited (the waker in the socket's registration, 168 → 16 bytes of task); `serve`'s setup outside its async block | 2,886 (1,884) | | | |

What the first step removed from every delivery: the wake-up of the connection task (an atomic
waker, a run-queue push, often a futex to unpark the other worker), its poll, the lock and take
of its queue, tungstenite's copy of the payload into its write buffer and axum's `Sink` layers.
What is left is the floor's own work plus a queue check under the connection's lock and a
histogram sample (a thread-local `LocalHistogram`, flushed once per publication). From an idle
connection it removed tungstenite's read and write buffers, axum's and hyper's upgrade state (the
`Upgraded` box and its buffer), and 120 bytes of the task: the read buffer now exists only while
a frame is partly read (bytes land on the stack). Write coalescing (`client.write_delay`,
`client.max_messages_in_frame`) is in, off by default as in Centrifugo; its figures are in the
section above. Writes of a flush leave in one `writev` (header and payload slices, up to 256
messages), so a batch costs one syscall.

After those changes, `perf record -F 1999 -g` on the hub through 10 s of the rooms scenario
(10,000 connections, 2,000 publications/s): 88% of its CPU in the kernel (`sendto`, and on
loopback the receiver's TCP input that the send runs), `Hub::broadcast` 3.3%, tokio's
`Registration::try_io` 2.7% (the readiness check before each write: a cache miss per socket
among 10,000), `ClientHandle::send_shared` 0.6%, `clock_gettime` 0.25%; the HTTP API's
parsing and routing together under 1%. What separates the hub from the floor is now mostly
run-to-run noise in that kernel share: rooms for 10 s, back to back, twice: floor 103,154 and
102,513 deliveries per CPU-second; Chorus 81,536 and 99,420; Chorus with pings every 300 s
instead of 25 s 85,036 and 102,921. The floor's figure held within 1% there, Chorus's moved
by 20%; hence `ROUNDS`. Across whole runs the floor moves too. Two runs of
`SERVERS="floor chorus sockudo" ROUNDS=3`, medians of three rounds each, twenty minutes apart:

| run | broadcast: floor / Chorus (÷) | rooms: floor / Chorus (÷) | idle: floor / Chorus (+) |
|---|---:|---:|---:|
| A | 178,731 / 148,810 (0.83×) | 79,696 / 85,036 (1.07×) | 1,884 / 2,842 (+959 B) |
| B, after the handle's hot fields were laid out first (`repr(C)`: the protocol, the lock, the socket and what `OutQueue::idle` reads in the first cache lines) | 166,251 / 150,376 (0.90×) | 102,147 / 87,596 (0.86×) | 1,886 / 2,856 (+969 B) |

Chorus's own medians moved little between A and B (broadcast +1%, rooms +3%); the floor's
moved by 7% and 28%, and the ratios with them. Run B is the one in the tables above. The
field order cost nothing and is kept, but what it bought is inside this noise.
"""

runs = {(s, sc): load(f"{s}-{sc}") for s in LABELS for sc in ["idle", "broadcast", "rooms"]}
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
if int(a.rounds) > 1:
    w(f"  The floor's and Chorus's figures are each the median of {a.rounds} back-to-back rounds (`ROUNDS={a.rounds}`);")
    w("  every round is in `.run/bench/rounds/`. Scenarios and servers not named in the last `SCENARIOS` and")
    w("  `SERVERS` keep the figures of the run before.")
w("  Memory per connection is (server RSS with the connections open − RSS before connecting) ÷")
w("  connections, read from `/proc/<pid>/stat`; CPU is the server's user+system time from the first")
w("  publication to the last delivery.")
w(f"- Scenarios: **idle** {a.idle} connections, each subscribed to its own channel, held 10 s;")
w(f"  **broadcast** {a.bcast} subscribers of one channel, {a.bcast_rate} publications/s"
  f" ({int(a.bcast) * float(a.bcast_rate):,.0f} deliveries/s offered) for {a.duration} s, and again at"
  f" {a.paced_rate}/s (**paced**, the rate Sockudo sustains, for a like-for-like comparison), and the same"
  f" deliveries/s as 1,000 subscribers at {int(float(a.bcast_rate) * int(a.bcast) / 1000)}/s (**1k**, bursts a tenth the size);")
w(f"  **rooms** {a.rooms} connections in rooms of 2–50 members, {a.rooms_rate} publications/s to random rooms for {a.duration} s.")
w(f"  **dense** {a.dense} subscribers of one channel at {a.dense_rate} publications/s (each connection gets every one: the case")
w("  write coalescing is for).")
w("- **The floor** is `chorus-loadtest floor-server`: the same client protocol and publish call as")
w("  Chorus, and nothing else (tokens and keys unchecked, no history, presence or metrics). Each")
w("  publication is framed once and written from the publish request's task straight to every")
w("  subscriber's socket: one `write` per delivery, no allocation, no wake-up; an idle connection")
w("  is its socket, a reading task with no buffer, and a registry entry. It is what a perfect hub")
w("  would cost on this machine; the harness drives it unchanged.")
w(f"- **chorus-delay** is Chorus with `client.write_delay` {a.write_delay} and `client.max_messages_in_frame` 16")
w("  (Centrifugo's coalescing, off by default), run on the scenarios where a connection gets many publications.")
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


def dpc(run):
    return g(run, "deliveries_per_server_cpu_sec")


def p99(run):
    return g(run, "latency_ms", "p99")


fi, fb, fr = runs[("floor", "idle")], runs[("floor", "broadcast")], runs[("floor", "rooms")]
ci_, cb_, cr_ = runs[("chorus", "idle")], runs[("chorus", "broadcast")], runs[("chorus", "rooms")]
sb_, sr_ = runs[("sockudo", "broadcast")], runs[("sockudo", "rooms")]
if fi or fb or fr:
    w("## Against the floor\n")
    w("Goals of issue 24, as ratios of runs made minutes apart in this one run (each scenario runs")
    w("against every server before the next scenario starts).\n")
    w("| goal | floor | chorus | chorus ÷ floor | |")
    w("|---|---:|---:|---:|---|")
    for name, f, c in [("broadcast", fb, cb_), ("rooms", fr, cr_)]:
        r = ratio(dpc(c), dpc(f))
        if r is not None:
            w(f"| deliveries per server CPU-second ≥ 0.9× the floor's ({name}) | {dpc(f):,.0f} | {dpc(c):,.0f} | {r:.2f}× | {'met' if r >= 0.9 else 'missed'} |")
    r = ratio(p99(cb_), p99(fb))
    if r is not None:
        w(f"| p99 on broadcast ≤ 1.2× the floor's | {p99(fb):.1f} ms | {p99(cb_):.1f} ms | {r:.2f}× | {'met' if r <= 1.2 else 'missed'} |")
    fm, cm = g(fi, "bytes_per_connection"), g(ci_, "bytes_per_connection")
    if fm is not None and cm is not None:
        w(f"| idle memory per connection ≤ the floor's + 1 KB | {fm:,.0f} B | {cm:,.0f} B | +{cm - fm:,.0f} B | {'met' if cm <= fm + 1024 else 'missed'} |")
    for name, f, c, sk in [("broadcast", fb, cb_, sb_), ("rooms", fr, cr_, sr_)]:
        room = ratio(dpc(f), dpc(sk))
        ours = ratio(dpc(c), dpc(sk))
        if room is None or ours is None:
            continue
        if room >= 1.5:
            w(f"| ≥ 1.5× Sockudo's deliveries per CPU-second ({name}) | floor {room:.2f}× Sockudo | chorus {ours:.2f}× Sockudo | | {'met' if ours >= 1.5 else 'missed'} |")
        else:
            w(f"| ≥ 1.5× Sockudo's deliveries per CPU-second ({name}) | floor {room:.2f}× Sockudo | chorus {ours:.2f}× Sockudo | | the floor itself is below 1.5× |")
    w("")
    for title, name in [("", "floor.md"), (f"Broadcast at {a.paced_rate} publications/s (paced):", "floor-paced.md"),
                        ("1,000 subscribers at ten times the rate (1k):", "floor-1k.md"),
                        (f"{a.dense} subscribers at {a.dense_rate} publications/s (dense):", "floor-dense.md"),
                        ("And Sockudo against the floor:", "floor-sockudo.md")]:
        t = read(name)
        if t.count("\n") > 2:
            if title:
                w(title + "\n")
            w(t)
    delay = [(n, read(n)) for n in ["delay-dense.md", "delay-1k.md", "delay-rooms.md"]]
    if any(t.count("\n") > 2 for _, t in delay):
        w("## Write coalescing (client.write_delay)\n")
        w(f"Chorus with `client.write_delay` {a.write_delay} and `max_messages_in_frame` 16 against Chorus as shipped (no delay,")
        w("publications written by the fan-out straight to the socket). Below 1 is better for latency, above 1 for throughput.\n")
        for n, t in delay:
            if t.count("\n") > 2:
                w(t)

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
        floor_us = 1e6 / dpc(fb) if dpc(fb) else None
        w(f"Both servers pay the kernel for every send. Profiling Chorus now puts about 88% of its CPU in the")
        w(f"kernel (issue 24's log below), about {0.88 * us:.1f} µs of its {us:.1f} µs per delivery. Sockudo spent {theirs:.1f} µs per")
        w(f"delivery in this run, so 2× its rate would need {theirs / 2:.1f} µs per delivery"
          + (f", below the floor's own {floor_us:.1f} µs: no server on this machine gets there by writing" if floor_us and floor_us > theirs / 2 else ",")
          + " one frame per delivery.")
        w("Twice the efficiency is reachable only by sending fewer frames (several publications per write,")
        w("`client.write_delay`, which the dense runs above measure), not by trimming the hub's own code.")
        w("Sockudo's efficiency also rises with its publish rate, which varies from run to run (its publish")
        w("call waits for its fan-out), so this ratio moves between runs more than the others.\n")

w(HISTORY_24)
w(HISTORY)

w("## Runs\n")
for server in LABELS:
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
