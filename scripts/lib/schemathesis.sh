# schemathesis (MIT, PyPI): property-based tests of the API from its OpenAPI document.
# Installed once into a virtualenv cached outside the clone.
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
SCHEMATHESIS_ROOT="${CHORUS_TOOLS:-$HOME/.cache/chorus/tools}/schemathesis-$SCHEMATHESIS_VERSION"
SCHEMATHESIS_BIN="$SCHEMATHESIS_ROOT/bin/schemathesis"

schemathesis_install() {
  [ -x "$SCHEMATHESIS_BIN" ] && return 0
  echo "installing schemathesis $SCHEMATHESIS_VERSION (PyPI, once; cached in $SCHEMATHESIS_ROOT)..."
  python3 -m venv "$SCHEMATHESIS_ROOT"
  "$SCHEMATHESIS_ROOT/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}
