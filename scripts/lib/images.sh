# Building the service images with podman (see scripts/images). Sourced after k8s.sh, which
# sets CONTAINERS_CONF.
IMAGES_CACHE="${CHORUS_IMAGES_CACHE:-$HOME/.cache/chorus/images}"
IMAGES_BASE="localhost/chorus-debian:bookworm"
IMAGES_BUILD_BASE="localhost/chorus-build:bookworm"
IMAGES_SERVICES=(hub api sink transcriber)

# The machine's configured Debian mirror (deb822 sources or a classic sources.list).
images_mirror() {
  local m
  m=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 | awk '{print $2}')
  [ -n "$m" ] || m=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 | awk '{print $2}')
  echo "${m:-http://deb.debian.org/debian}"
}

# The base images: Debian minbase, loaded from the cached OCI archive or made once with
# debootstrap; and the build stage's base on it (k8s/images/Containerfile.build).
images_base() {
  images_debian
  podman image exists "$IMAGES_BUILD_BASE" && return 0
  podman build --pull=never --quiet -f k8s/images/Containerfile.build -t "$IMAGES_BUILD_BASE" \
    k8s/images >/dev/null
}

images_debian() {
  podman image exists "$IMAGES_BASE" && return 0
  local archive="$IMAGES_CACHE/chorus-debian-bookworm.oci.tar"
  mkdir -p "$IMAGES_CACHE"
  if [ ! -s "$archive" ]; then
    local root
    root=$(mktemp -d "$IMAGES_CACHE/rootfs.XXXXXX")
    echo "making the base image: debootstrap --variant=minbase bookworm from $(images_mirror) (once)"
    debootstrap --variant=minbase bookworm "$root" "$(images_mirror)" >"$IMAGES_CACHE/debootstrap.log" 2>&1 ||
      { tail -20 "$IMAGES_CACHE/debootstrap.log" >&2; rm -rf "$root"; return 1; }
    tar -C "$root" -c . | podman import - "$IMAGES_BASE" >/dev/null
    rm -rf "$root"
    podman save --format oci-archive -o "$archive.part" "$IMAGES_BASE" && mv "$archive.part" "$archive"
    return 0
  fi
  podman load -i "$archive" >/dev/null
  # An OCI archive loads under the name it was saved with.
  podman image exists "$IMAGES_BASE"
}

# images_build BIN_DIR MODEL TAG: one image per service from k8s/images/Containerfile.
images_build() {
  local bin_dir=$1 model=$2 tag=$3 ctx svc
  ctx="$IMAGES_CACHE/context"
  if [ ! -f web/dist/index.html ]; then
    (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build >/dev/null)
  fi
  for svc in "${IMAGES_SERVICES[@]}"; do
    rm -rf "$ctx" && mkdir -p "$ctx"
    # Stripped: the debug sections are for a debugger, not a pod (and are most of the bytes).
    strip --strip-debug -o "$ctx/chorus-$svc" "$bin_dir/chorus-$svc"
    cp k8s/images/collect-libs "$ctx/"
    if [ "$svc" = transcriber ]; then cp "$model" "$ctx/ggml-tiny.en.bin"; else : >"$ctx/ggml-tiny.en.bin"; fi
    # The API serves the built web client (web.dir); the others get an empty folder.
    mkdir -p "$ctx/web"
    if [ "$svc" = api ]; then cp -r web/dist/. "$ctx/web/"; fi
    echo "building localhost/chorus-$svc:$tag"
    podman build --pull=never --quiet --build-arg SERVICE="$svc" \
      -f k8s/images/Containerfile -t "localhost/chorus-$svc:$tag" "$ctx" >/dev/null
  done
  rm -rf "$ctx"
  # The build stages of earlier builds, untagged now: they would fill the disk run after run.
  podman image prune -f >/dev/null
}
