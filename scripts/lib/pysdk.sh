# The official Python SDK, centrifuge-python (PyPI), in a virtualenv cached outside the clone;
# hub/tests/python/sdk_test.py runs with its interpreter.
PYSDK_VERSION="${PYSDK_VERSION:-0.7.0}"
PYSDK_ROOT="${CHORUS_TOOLS:-$HOME/.cache/chorus/tools}/centrifuge-python-$PYSDK_VERSION"
PYSDK_PYTHON="$PYSDK_ROOT/bin/python"

pysdk_install() {
  # The marker is written last: a half-finished install is redone.
  [ -e "$PYSDK_ROOT/.installed" ] && return 0
  echo "installing centrifuge-python==$PYSDK_VERSION (PyPI, once; cached in $PYSDK_ROOT)..."
  rm -rf "$PYSDK_ROOT"
  python3 -m venv "$PYSDK_ROOT"
  "$PYSDK_ROOT/bin/pip" install --quiet --disable-pip-version-check "centrifuge-python==$PYSDK_VERSION"
  touch "$PYSDK_ROOT/.installed"
}

# pysdk_tests: the Python SDK's scenarios over JSON and over Protobuf against the debug hub
# (CHORUS_SDK_REDIS, when set, puts the hub on the Redis engine).
pysdk_tests() {
  local protocol
  for protocol in json protobuf; do
    CHORUS_HUB_BIN="$CARGO_TARGET_DIR/debug/chorus-hub" "$PYSDK_PYTHON" hub/tests/python/sdk_test.py --protocol "$protocol"
  done
}
