#!/usr/bin/env bash
# Whether the kind tier (make kind-up AIGW_KIND_LOCAL=1, make test-kind) can run here without the cold builds:
# .ci/run asks before running it. Ready means docker answers and every image the cluster needs is either in
# docker's store or has its Go-built parts in the cache, so what is left is docker builds and the cluster (minutes),
# never the ~17 min of cold builds the README measures. Read-only: it builds and changes nothing.
# Exit 0 printing "ready: ..." on stdout; exit 1 printing why not (one line).
#
# Environment: the image scripts' (AIGW_CACHE_DIR, AIGW_IMAGE_PREFIX, KIND_VERSION, K8S_VERSION, EG_VERSION).
set -euo pipefail

docker info >/dev/null 2>&1 || { echo "docker does not answer (sudo make docker-engine installs and starts it)"; exit 1; }
LOG_TAG=kind-ready
# shellcheck source=hack/lib/image-build.sh
source "$(dirname "$0")/lib/image-build.sh"

missing=()
# need <path> <the script that builds it>
need() { [[ -e "$1" ]] || missing+=("${1#"$CACHE_ROOT"/} (hack/$2)"); }

need "$CACHE_ROOT/kind/$KIND_VERSION/bin/kind" setup-kind.sh
if ! has_image "$PREFIX/kind-node:v$K8S_VERSION"; then
  for c in kubelet kubeadm kube-proxy kube-controller-manager kube-scheduler; do
    need "$CACHE_ROOT/kind/k8s-$K8S_VERSION/bin/$c" build-kube-node.sh
  done
  need "$CACHE_ROOT/kind/k8s-$K8S_VERSION/images.tar" build-node-images.sh
  # build-kind-base.sh builds its binaries in order and stops at the first failure: the last one stands for all.
  has_image "$PREFIX/kind-base:v$KIND_VERSION" \
    || need "$CACHE_ROOT/kind/base-$KIND_VERSION/bin/containerd-fuse-overlayfs-grpc" build-kind-base.sh
fi
if ! has_image "$PREFIX/envoy-gateway:v$EG_VERSION"; then
  [[ -n "$(find "$CACHE_ROOT/envoy-gateway" -path "*/eg-${EG_VERSION}_*/bin/envoy-gateway" 2>/dev/null | head -n 1)" ]] \
    || missing+=("envoy-gateway/eg-${EG_VERSION}_*/bin/envoy-gateway (hack/setup-envoy-gateway.sh)")
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "the kind images need cold builds (~17 min on 2 cores after make envtest; make kind-images builds them): missing ${missing[*]}"
  exit 1
fi
echo "ready: docker answers, and the kind images are built or their Go builds are cached in $CACHE_ROOT"
