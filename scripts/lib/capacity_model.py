"""Turns scripts/bench-redis's scale-out runs into docs/benchmarks/redis-scale.md (+ .json):
deliveries/s and Redis CPU with 1, 2 and 3 shards, Kafka bytes read by a cluster sharing one
consumer group against every node reading everything, and a capacity model for 1M connections
and 1M deliveries/s built from the measured unit costs, with the arithmetic shown.

usage: capacity_model.py WORK_DIR OUT_DIR DURATION_SECS
"""
import json
import math
import os
import sys

work, out, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])


def load(name):
    path = os.path.join(work, name)
    return json.load(open(path)) if os.path.exists(path) else None


def fmt(v, f="{:.2f}"):
    return "–" if v is None else f.format(v)


data = {"shards": {}, "kafka": {}}
lines = [
    "## Past one Redis: shards and Kafka read once (`scripts/bench-redis`, PARTS=\"shards kafka\")",
    "",
    "chorus-hub (release) on this 2-core machine, everything on loopback: hubs, redis-servers,",
    "tansu and the loadtest share the two cores, so these rows measure unit costs (CPU per",
    "delivery, Redis CPU per publication, bytes per record), not the throughput of separate",
    "machines. Redis CPU is each redis-server's user+system time over the run, from /proc.",
    "",
    f"### Shards: rooms traffic over 2 nodes, channels with history ({duration:.0f} s)",
    "",
    "| shards | connections | delivered / expected | lost | publications | deliveries/s | p99 ms | Redis CPU s (total) | busiest shard CPU s | Redis CPU ms per 1k deliveries | Redis CPU µs per publication |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
for count in (1, 2, 3):
    r, cpu = load(f"shards-{count}.json"), load(f"shards-{count}.redis.json")
    if not r or not cpu:
        continue
    shard_cpu = cpu["shard_cpu_secs"]
    total = sum(shard_cpu)
    d = {
        "shards": count,
        "connections": r["connections"],
        "delivered": r["delivered"],
        "expected": r["expected_deliveries"],
        "lost": r["lost"],
        "publications": r["publications"],
        "deliveries_per_sec": r["deliveries_per_sec"],
        "p99_ms": r["latency_ms"].get("p99"),
        "redis_cpu_secs": total,
        "busiest_shard_cpu_secs": max(shard_cpu),
        "redis_cpu_ms_per_1k_deliveries": total * 1000 / (r["delivered"] / 1000) if r["delivered"] else None,
        "redis_cpu_us_per_publication": total * 1e6 / r["publications"] if r["publications"] else None,
        "deliveries_per_server_cpu_sec": r.get("deliveries_per_server_cpu_sec"),
    }
    data["shards"][count] = d
    lines.append(
        f"| {count} | {d['connections']} | {d['delivered']} / {d['expected']} | {d['lost']} | {d['publications']} | "
        f"{fmt(d['deliveries_per_sec'], '{:.0f}')} | {fmt(d['p99_ms'])} | {fmt(total)} | {fmt(max(shard_cpu))} | "
        f"{fmt(d['redis_cpu_ms_per_1k_deliveries'], '{:.3f}')} | {fmt(d['redis_cpu_us_per_publication'], '{:.1f}')} |"
    )
one, three = data["shards"].get(1), data["shards"].get(3)
if one and three:
    lines += [
        "",
        f"- Three shards against one: busiest shard's CPU ×{three['busiest_shard_cpu_secs'] / max(one['busiest_shard_cpu_secs'], 1e-9):.2f}, "
        f"total Redis CPU ×{three['redis_cpu_secs'] / max(one['redis_cpu_secs'], 1e-9):.2f}, deliveries/s ×{three['deliveries_per_sec'] / one['deliveries_per_sec']:.2f} "
        "(the cores are shared, so deliveries/s cannot grow here; what sharding buys is the busiest Redis's share).",
    ]

lines += [
    "",
    f"### Kafka read by a cluster of 3 nodes (6 partitions, {duration:.0f} s of records)",
    "",
    "| mode | records produced | records read (all nodes) | bytes read (all nodes) | bytes read/s | read amplification |",
    "|---|---|---|---|---|---|",
]
for mode in ("shared", "every"):
    r, k = load(f"kafka-{mode}.json"), load(f"kafka-{mode}.kafka.json")
    if not r or not k:
        continue
    k.setdefault("read_secs", duration)
    produced = r["publications"]
    d = {
        "records_produced": produced,
        "records_read": k["records_read"],
        "bytes_read": k["bytes_read"],
        "bytes_read_per_sec": k["bytes_read"] / duration,
        "read_secs": k["read_secs"],
        "publish_secs": k.get("publish_secs"),
        "publishes": k.get("publishes"),
        "amplification": k["records_read"] / produced if produced else None,
        "delivered": r["delivered"],
        "expected": r["expected_deliveries"],
        "lost": r["lost"],
        "duplicated": r.get("duplicated"),
    }
    data["kafka"][mode] = d
    name = "one shared group" if mode == "shared" else "every node reads all"
    lines.append(
        f"| {name} | {produced} | {d['records_read']:.0f} | {d['bytes_read']:.0f} | {fmt(d['bytes_read_per_sec'], '{:.0f}')} | "
        f"×{fmt(d['amplification'])} |"
    )
shared, every = data["kafka"].get("shared"), data["kafka"].get("every")
if shared and every:
    lines += [
        "",
        f"- Shared group against every node reading all: bytes read ×{shared['bytes_read'] / max(every['bytes_read'], 1):.2f} "
        f"(goal: ×{1 / 3:.2f} with 3 nodes). Deliveries: shared {shared['delivered']} / {shared['expected']} expected, "
        f"{shared['lost']} lost, {shared['duplicated']} duplicated; every-node {every['delivered']} / {every['expected']}, "
        f"{every['duplicated']} duplicated (records without an idempotency key are published once per reading node).",
    ]

if shared and shared.get("publish_secs") and shared.get("publishes"):
    mean = shared["publish_secs"] / shared["publishes"]
    shared["publish_ms_mean"] = mean * 1000
    lines += [
        "",
        f"- A record costs its node one publish into Redis, made in turn by the node's consumer loop: "
        f"{mean * 1000:.3f} ms on average in the shared run, so one loop takes at most "
        f"**{1 / mean:,.0f} records/s**. A bound from the loop's cost, not a saturated run.",
    ]

# The capacity model, from these runs and the idle run's memory per connection.
idle_path = os.path.join(out, "chorus-idle.json")
idle = json.load(open(idle_path)) if os.path.exists(idle_path) else None
model = {}
if one and idle and shared:
    mem_per_conn = idle["bytes_per_connection"]
    per_cpu = one["deliveries_per_server_cpu_sec"] or one["deliveries_per_sec"] / 2
    fanout = one["delivered"] / one["publications"]
    redis_us = one["redis_cpu_us_per_publication"]
    bytes_per_record = shared["bytes_read"] / max(shared["records_read"], 1)
    node_rate = 1000 / shared["publish_ms_mean"] if shared.get("publish_ms_mean") else shared["records_read"] / duration
    conns, deliveries = 1_000_000, 1_000_000
    node_cores, node_mem, headroom = 8, 16 * 2**30, 0.6
    mem_nodes = conns * mem_per_conn / (node_mem * headroom)
    cpu_nodes = deliveries / (per_cpu * node_cores * headroom)
    pubs = deliveries / fanout
    kafka_nodes = pubs / (node_rate * headroom)
    nodes = max(2, math.ceil(max(mem_nodes, cpu_nodes, kafka_nodes)))
    redis_cores = pubs * redis_us / 1e6
    shards = max(1, math.ceil(redis_cores / headroom))
    kafka_bytes = pubs * bytes_per_record
    partitions = 2 * nodes
    model = {
        "memory_per_connection_bytes": mem_per_conn,
        "deliveries_per_hub_cpu_sec": per_cpu,
        "fanout": fanout,
        "redis_cpu_us_per_publication": redis_us,
        "kafka_bytes_per_record": bytes_per_record,
        "kafka_records_per_sec_one_node": node_rate,
        "hub_nodes": nodes,
        "redis_shards": shards,
        "kafka_partitions": partitions,
    }
    lines += [
        "",
        "### Capacity model: 1M connections and 1M deliveries/s",
        "",
        "Unit costs, measured above and in the idle run (`docs/benchmarks/chorus-idle.json`):",
        "",
        f"- memory per idle connection: {mem_per_conn:.0f} B;",
        f"- hub CPU: {per_cpu:,.0f} deliveries per CPU-second (the 1-shard rooms run);",
        f"- fan-out: {fanout:.1f} deliveries per publication (rooms of 2–50);",
        f"- Redis: {redis_us:.1f} µs of Redis CPU per publication (history + PUB/SUB to 2 nodes);",
        f"- Kafka: {bytes_per_record:.0f} bytes read per record, each record read once per cluster.",
        "",
        f"Assumed hub node: {node_cores} cores and {node_mem / 2**30:.0f} GiB, run at {headroom:.0%} of each.",
        "",
        f"- Hub nodes for memory: 1,000,000 × {mem_per_conn:.0f} B ÷ ({node_mem / 2**30:.0f} GiB × {headroom}) = {mem_nodes:.2f}.",
        f"- Hub nodes for CPU: 1,000,000 deliveries/s ÷ ({per_cpu:,.0f} × {node_cores} cores × {headroom}) = {cpu_nodes:.2f}.",
        f"- Publications/s: 1,000,000 ÷ {fanout:.1f} = {pubs:,.0f}; if they all come from Kafka, each node's one",
        f"  consumer loop takes {node_rate:,.0f} records/s (one publish each, above), so nodes for Kafka:",
        f"  {pubs:,.0f} ÷ ({node_rate:,.0f} × {headroom}) = {kafka_nodes:.2f}.",
        f"- **Hub nodes: {nodes}** (the largest, rounded up, and at least 2 so one can fail).",
        f"- Redis cores: {pubs:,.0f} × {redis_us:.1f} µs = {redis_cores:.2f} cores; Redis runs commands on one core,",
        f"  so at {headroom:.0%} per shard: **Redis shards: {shards}** (plus a replica each for failover).",
        f"- Kafka read by the cluster: {pubs:,.0f} records/s × {bytes_per_record:.0f} B = {kafka_bytes / 2**20:.1f} MiB/s (×1, not ×{nodes}).",
        f"- **Partitions: {partitions}**: each node reads its share through one loop, so partitions only",
        f"  spread the records over the nodes: at least one per node, and twice that so a dead node's",
        f"  share spreads over the others ({nodes} nodes × 2).",
        "",
        "Fan-out moves the answer most: broadcast-heavy traffic (thousands of subscribers per",
        "publication) needs far fewer publications, so Redis and Kafka shrink and the hub nodes'",
        "CPU dominates; one-to-one chats (fan-out 2) need 500,000 publications/s, so Redis shards",
        "and partitions grow by the same factor.",
    ]
data["capacity_model"] = model
open(os.path.join(out, "redis-scale.md"), "w").write("\n".join(lines) + "\n")
json.dump(data, open(os.path.join(out, "redis-scale.json"), "w"), indent=2)
print("\n".join(lines))
