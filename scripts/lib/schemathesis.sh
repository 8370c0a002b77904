# schemathesis (MIT, PyPI): property-based tests of the API from its OpenAPI document.
# Installed once into a virtualenv cached outside the clone.
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
SCHEMATHESIS_ROOT="${CHORUS_TOOLS:-$HOME/.cache/chorus/tools}/schemathesis-$SCHEMATHESIS_VERSION"
SCHEMATHESIS_BIN="$SCHEMATHESIS_ROOT/bin/schemathesis"

# shellcheck source=pytool.sh
. "$(dirname "${BASH_SOURCE[0]}")/pytool.sh"

schemathesis_install() {
  pytool_install "$SCHEMATHESIS_ROOT" schemathesis "schemathesis==$SCHEMATHESIS_VERSION"
}
