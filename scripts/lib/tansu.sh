# tansu, the Apache-2.0 Kafka-compatible broker the local stack and the Kafka tests run.
# Sourced by the scripts. Built once with `cargo install` (11-17 minutes on 2 cores) and cached
# outside the clone. `--locked` matters: without it the build fails to compile.
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
TANSU_ROOT="${CHORUS_TOOLS:-$HOME/.cache/chorus/tools}/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"

tansu_install() {
  [ -x "$TANSU_BIN" ] && return 0
  echo "building tansu $TANSU_VERSION (11-17 minutes on 2 cores, once; cached in $TANSU_ROOT)..."
  CARGO_TARGET_DIR="$TANSU_ROOT/build" cargo install tansu --version "$TANSU_VERSION" \
    --locked --features libsql,dynostore --root "$TANSU_ROOT" --quiet
  rm -rf "$TANSU_ROOT/build"
}

# tansu_start DATA_DIR PORT PIDFILE LOG: a durable broker on 127.0.0.1:PORT. The sqlite path is
# taken relative to the working directory (an absolute one gets doubled), hence the cd; exec
# keeps the PID in PIDFILE the broker's own.
tansu_start() {
  local dir=$1 port=$2 pidfile=$3 log=$4
  mkdir -p "$dir"
  (
    cd "$dir"
    exec "$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "sqlite://tansu.db"
  ) >>"$log" 2>&1 &
  echo $! >"$pidfile"
}
