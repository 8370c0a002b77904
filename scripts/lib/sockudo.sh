# Sockudo, the Pusher-protocol peer the load test compares against. Sourced by scripts/bench.
# Built once with `cargo install` and cached outside the clone, because the build takes minutes.
SOCKUDO_VERSION="${SOCKUDO_VERSION:-5.2.0}"
SOCKUDO_ROOT="${CHORUS_TOOLS:-$HOME/.cache/chorus/tools}/sockudo-$SOCKUDO_VERSION"
SOCKUDO_BIN="$SOCKUDO_ROOT/bin/sockudo"

sockudo_install() {
  [ -x "$SOCKUDO_BIN" ] && return 0
  if ! command -v protoc >/dev/null; then
    echo "installing protobuf-compiler (sockudo's build needs protoc)..."
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq protobuf-compiler >/dev/null
  fi
  echo "building sockudo $SOCKUDO_VERSION (about 6 minutes on 2 cores, once; cached in $SOCKUDO_ROOT)..."
  # Its own target dir so the build does not thrash the workspace cache.
  CARGO_TARGET_DIR="$SOCKUDO_ROOT/build" cargo install sockudo --version "$SOCKUDO_VERSION" \
    --locked --root "$SOCKUDO_ROOT" --quiet
  rm -rf "$SOCKUDO_ROOT/build"
}
