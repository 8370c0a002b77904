# The fault suite's and the soak's common ground (faults/tests/suite/): what the stack needs
# installed, and how a test of the suite is run against a build of the services.

# faults_prepare: tansu, DynamoDB Local, the Debian packages, the Whisper model, and the
# network faults' tools (nft, iptables).
faults_prepare() {
  # shellcheck source=packages.sh
  . scripts/lib/packages.sh
  packages_install
  # shellcheck source=tansu.sh
  . scripts/lib/tansu.sh
  tansu_install
  # shellcheck source=dynamodb.sh
  . scripts/lib/dynamodb.sh
  dynamodb_install
  # shellcheck source=model.sh
  . scripts/lib/model.sh
  model_prepare
  [ "$(id -u)" = 0 ] ||
    { echo "the fault suite mounts a tmpfs for the media store and makes network namespaces: run it as root" >&2; return 1; }
  # shellcheck source=netns.sh
  . scripts/lib/netns.sh
  netns_prepare
}

# faults_run PROFILE TEST: one test of the suite, with the services built in PROFILE
# (debug or release), as processes.
faults_run() {
  local profile=$1 test=$2 flag=()
  [ "$profile" = release ] && flag=(--release)
  CHORUS_TANSU_BIN="$TANSU_BIN" CHORUS_DYNAMODB_DIR="$(dynamodb_dir)" \
    CHORUS_WHISPER_MODEL="$MODEL_FILE" \
    CHORUS_HUB_BIN="$CARGO_TARGET_DIR/$profile/chorus-hub" \
    CHORUS_API_BIN="$CARGO_TARGET_DIR/$profile/chorus-api" \
    CHORUS_SINK_BIN="$CARGO_TARGET_DIR/$profile/chorus-sink" \
    CHORUS_TRANSCRIBER_BIN="$CARGO_TARGET_DIR/$profile/chorus-transcriber" \
    cargo test "${flag[@]}" --locked -p chorus-faults --test suite -- --ignored --exact "$test" --nocapture
}
