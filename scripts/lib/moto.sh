# moto's server mode (Apache-2.0, PyPI): an S3-compatible server for the tests of the S3 object
# store path. Installed once into a virtualenv cached outside the clone.
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
MOTO_ROOT="${CHORUS_TOOLS:-$HOME/.cache/chorus/tools}/moto-$MOTO_VERSION"
MOTO_BIN="$MOTO_ROOT/bin/moto_server"

moto_install() {
  [ -x "$MOTO_BIN" ] && return 0
  echo "installing moto $MOTO_VERSION (PyPI, once; cached in $MOTO_ROOT)..."
  python3 -m venv "$MOTO_ROOT"
  "$MOTO_ROOT/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
}
