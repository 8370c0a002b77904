# A command-line tool from PyPI in a virtualenv of its own, cached outside the clone.
# pytool_install ROOT NAME SPEC: installs SPEC (e.g. "moto[server]==5.2.5") into ROOT unless
# ROOT/bin/NAME is already there.
pytool_install() {
  local root=$1 name=$2 spec=$3
  [ -x "$root/bin/$name" ] && return 0
  echo "installing $spec (PyPI, once; cached in $root)..."
  python3 -m venv "$root"
  "$root/bin/pip" install --quiet --disable-pip-version-check "$spec"
}
