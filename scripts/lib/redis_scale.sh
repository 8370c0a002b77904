# The scale-out parts of scripts/bench-redis, sourced by it (they use its start_hub,
# stop_hubs, cpu_secs, wait_port and $BIN): Redis shards, and Kafka read once per cluster.
# Writes docs/benchmarks/redis-scale.md and .json, with a capacity model from the unit costs.
# shellcheck shell=bash

# start_shards COUNT: COUNT redis-servers on REDIS_PORT+1...; sets ADDRESSES (JSON list).
start_shards() {
  local count=$1 list=()
  for k in $(seq 1 "$count"); do
    local port=$((REDIS_PORT + k))
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      >>"$WORK/logs/redis-$port.log" 2>&1 &
    echo $! >"$WORK/redis-shard-$k.pid"
    wait_port "$port"
    list+=("\"redis://127.0.0.1:$port\"")
  done
  ADDRESSES="[$(IFS=,; echo "${list[*]}")]"
}

stop_shards() { for f in "$WORK"/redis-shard-*.pid; do [ -e "$f" ] && stop_pidfile "$f"; done; return 0; }

# shard_run COUNT: rooms traffic over two nodes on COUNT shards; Redis CPU per shard to JSON.
shard_run() {
  local count=$1 label="shards-$1" base=18100 urls=() pids=()
  start_shards "$count"
  # Chat-like channels: history, so each publication runs publish.lua on its shard.
  CHANNEL=', "history_size": 100, "history_ttl": "300s"'
  for i in 1 2; do
    CHANNEL="$CHANNEL" start_hub redis $((base + i)) 1
    urls+=(--url "ws://127.0.0.1:$((base + i))/connection/websocket")
    pids+=(--server-pid "$(cat "$WORK/hub-$((base + i)).pid")")
  done
  local before=()
  for k in $(seq 1 "$count"); do before+=("$(cpu_secs "$(cat "$WORK/redis-shard-$k.pid")")"); done
  echo "== $label: $SHARD_N connections in rooms on 2 nodes over $count shard(s), $SHARD_RATE publications/s"
  "$BIN/chorus-loadtest" rooms "${urls[@]}" "${pids[@]}" --hmac-secret "$SECRET" \
    --api-url "http://127.0.0.1:$((base + 1))" --api-key "$KEY" --label "$label" \
    --connections "$SHARD_N" --publish-rate "$SHARD_RATE" --duration "$DURATION" \
    --publishers 8 --workers 1 --worker-threads 1 --connect-rate 3000 \
    --json "$WORK/$label.json" || echo "   ($label reported errors; see the table)"
  local cpus=()
  for k in $(seq 1 "$count"); do
    cpus+=("$(awk -v a="$(cpu_secs "$(cat "$WORK/redis-shard-$k.pid")")" -v b="${before[$((k - 1))]}" 'BEGIN{print a-b}')")
  done
  echo "{\"shard_cpu_secs\": [$(IFS=,; echo "${cpus[*]}")]}" >"$WORK/$label.redis.json"
  stop_hubs
  stop_shards
  unset ADDRESSES
}

# metric_sum NAME FILTER PORTS...: a metric summed over the hubs on PORTS.
metric_sum() {
  local name=$1 filter=$2; shift 2
  for port in "$@"; do curl -fsS "http://127.0.0.1:$port/metrics"; done |
    awk -v n="$name" -v f="$filter" 'index($0, n) == 1 && index($0, f) { s += $NF } END { print s + 0 }'
}

# kafka_run MODE: three Redis-engine nodes consuming topic lt-MODE at KAFKA_RATE records/s;
# MODE shared (one group) or every (a group per node, each reading everything, as before
# issue 23). Counted once every node's lag is 0.
kafka_run() {
  local mode=$1 label="kafka-$1" base=18200 urls=() pids=() ports=()
  start_shards 1
  for i in 1 2 3; do
    local group=bench-shared
    [ "$mode" = every ] && group="bench-every-$i"
    CONSUMERS="[{\"enabled\": true, \"name\": \"lt\", \"type\": \"kafka\", \"kafka\": {
      \"brokers\": [\"127.0.0.1:$KAFKA_PORT\"], \"topics\": [\"lt-$mode\"], \"consumer_group\": \"$group\",
      \"publication_data_mode\": {\"enabled\": true}}}]" start_hub redis $((base + i)) 1
    ports+=($((base + i)))
    urls+=(--url "ws://127.0.0.1:$((base + i))/connection/websocket")
    pids+=(--server-pid "$(cat "$WORK/hub-$((base + i)).pid")")
  done
  # Let the nodes see each other and deal the partitions out.
  sleep 5
  echo "== $label: $KAFKA_RATE records/s into 6 partitions, 3 nodes ($mode)"
  local start; start=$(date +%s.%N)
  "$BIN/chorus-loadtest" rooms "${urls[@]}" "${pids[@]}" --hmac-secret "$SECRET" \
    --kafka-brokers "127.0.0.1:$KAFKA_PORT" --kafka-topic "lt-$mode" --label "$label" \
    --connections 600 --room-min 2 --room-max 2 --publish-rate "$KAFKA_RATE" \
    --duration "$DURATION" --drain-timeout 30 --workers 1 --worker-threads 1 \
    --json "$WORK/$label.json" || echo "   ($label reported errors; see the table)"
  # Every node done reading (lag 0 on every partition) before counting, for at most 120 s.
  for _ in $(seq 1 240); do
    [ "$(metric_sum chorus_hub_consumer_lag 'consumer="lt"' "${ports[@]}")" = 0 ] && break
    sleep 0.5
  done
  local end; end=$(date +%s.%N)
  local bytes records publish_secs publishes
  bytes=$(metric_sum chorus_hub_consumer_bytes_total 'consumer="lt"' "${ports[@]}")
  records=$(metric_sum chorus_hub_consumer_records_total 'consumer="lt"' "${ports[@]}")
  # Each record is one publish into Redis, made in turn by its node's consumer loop.
  publish_secs=$(metric_sum chorus_hub_broker_publish_seconds_sum '' "${ports[@]}")
  publishes=$(metric_sum chorus_hub_broker_publish_seconds_count '' "${ports[@]}")
  echo "{\"bytes_read\": $bytes, \"records_read\": $records, \"publish_secs\": $publish_secs, \"publishes\": $publishes," \
    "\"read_secs\": $(awk -v a="$end" -v b="$start" 'BEGIN{print a-b}')}" >"$WORK/$label.kafka.json"
  stop_hubs
  stop_shards
}

if part shards; then
  for count in 1 2 3; do shard_run "$count"; done
fi

if part kafka; then
  # shellcheck source=tansu.sh
  . scripts/lib/tansu.sh
  tansu_install
  rm -rf "$WORK/kafka"
  tansu_start "$WORK/kafka" "$KAFKA_PORT" "$WORK/tansu.pid" "$PWD/$WORK/logs/tansu.log"
  wait_port "$KAFKA_PORT"
  for mode in shared every; do
    "$TANSU_BIN" topic create "lt-$mode" --partitions 6 --broker "tcp://127.0.0.1:$KAFKA_PORT" >/dev/null
  done
  kafka_run shared
  kafka_run every
  rm -rf "$WORK/kafka"
  stop_pidfile "$WORK/tansu.pid"
fi

python3 scripts/lib/capacity_model.py "$WORK" "$OUT" "$DURATION"
