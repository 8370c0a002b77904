# cargo-fuzz (crates.io) on the protocol's decoders of untrusted bytes (protocol/fuzz): client
# frames (JSON and Protobuf), chat events and state events. cargo-fuzz is installed once into
# the tools cache; the targets build with libFuzzer and AddressSanitizer under RUSTC_BOOTSTRAP
# (the machine has one stable toolchain), into a target dir outside the clone. Each run
# reads the seeds kept in the repo (protocol/fuzz/seeds/<target>) and grows a working corpus
# in .run/fuzz/<target>.
CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.1}"
CARGO_FUZZ_ROOT="${CHORUS_TOOLS:-$HOME/.cache/chorus/tools}/cargo-fuzz-$CARGO_FUZZ_VERSION"
FUZZ_TARGETS=(decode_frame decode_protobuf_frame apply_fossil_delta parse_websocket_frames decode_chat_event decode_state_event)

fuzz_install() {
  [ -x "$CARGO_FUZZ_ROOT/bin/cargo-fuzz" ] && return 0
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION (crates.io, once; cached in $CARGO_FUZZ_ROOT)..."
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root "$CARGO_FUZZ_ROOT"
}

# fuzz_run SECONDS: every target for SECONDS each; a crash fails with libFuzzer's report and
# leaves the input in protocol/fuzz/artifacts/<target>/ (make it a regression test).
fuzz_run() {
  local seconds=$1 root t
  root=$(pwd)
  for t in "${FUZZ_TARGETS[@]}"; do
    mkdir -p "$root/.run/fuzz/$t"
    echo "fuzzing $t for ${seconds}s"
    if ! (cd protocol/fuzz && RUSTC_BOOTSTRAP=1 PATH="$CARGO_FUZZ_ROOT/bin:$PATH" \
      cargo fuzz run --target-dir "${CARGO_TARGET_DIR:-$HOME/.cache/chorus/target}/fuzz" "$t" \
      "$root/.run/fuzz/$t" "seeds/$t" -- -max_total_time="$seconds" -print_final_stats=1 \
      >"$root/.run/fuzz/$t.log" 2>&1); then
      tail -60 "$root/.run/fuzz/$t.log" >&2
      echo "fuzz: $t failed; the input is in protocol/fuzz/artifacts/$t/" >&2
      return 1
    fi
    grep -E "^Done|stat::new_units_added" "$root/.run/fuzz/$t.log"
  done
}
