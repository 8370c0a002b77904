# Debian packages the voice pipeline needs, installed when missing (the scripts run as root on
# these machines; otherwise through sudo):
# - cmake, clang, libclang-dev: whisper-rs builds whisper.cpp with cmake and binds it with
#   bindgen;
# - libopus-dev, pkg-config: libopus decodes the Opus that browsers record;
# - espeak-ng, opus-tools: the tests speak known sentences and encode them to OGG/Opus.
packages_install() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v clang >/dev/null || missing+=(clang)
  compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || missing+=(libclang-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  pkg-config --exists opus 2>/dev/null || missing+=(libopus-dev)
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v opusenc >/dev/null || missing+=(opus-tools)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}
