# Debian's Chromium for the web client's browser test (api/tests/browser.rs drives it through
# npm's playwright-core; no browser is downloaded at run time). Installed when missing.
chromium_install() {
  command -v chromium >/dev/null && return 0
  echo "installing Debian's chromium (once)"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
}
