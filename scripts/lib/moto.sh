# moto's server mode (Apache-2.0, PyPI): an S3-compatible server for the tests of the S3 object
# store path. Installed once into a virtualenv cached outside the clone.
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
MOTO_ROOT="${CHORUS_TOOLS:-$HOME/.cache/chorus/tools}/moto-$MOTO_VERSION"
MOTO_BIN="$MOTO_ROOT/bin/moto_server"

# shellcheck source=pytool.sh
. "$(dirname "${BASH_SOURCE[0]}")/pytool.sh"

moto_install() {
  pytool_install "$MOTO_ROOT" moto_server "moto[server]==$MOTO_VERSION"
}
