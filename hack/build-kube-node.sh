#!/usr/bin/env bash
# Build the Kubernetes commands a kind node runs, from the Go module proxy, the way hack/setup-envtest.sh builds
# kube-apiserver (same wrapper module, so the Go build cache is shared): kubelet, kubeadm, kube-proxy,
# kube-controller-manager and kube-scheduler, static (CGO off), version-stamped. With kube-apiserver and kubectl
# from setup-envtest they land in $AIGW_CACHE_DIR/kind/k8s-<version>/bin: the binaries of a release tarball.
# Idempotent (a built binary is kept); one command at a time at the lowest CPU and I/O priority (GOMAXPROCS=1
# unless set), since the machine is shared. Cold: tens of minutes on 2 cores. Prints the bin directory last.
#
# Environment: AIGW_CACHE_DIR, K8S_VERSION (1.36.3).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
HACK="$(cd "$(dirname "$0")" && pwd)"
OUT="$CACHE_ROOT/kind/k8s-$K8S_VERSION/bin"
COMMANDS=(kubelet kubeadm kube-proxy kube-controller-manager kube-scheduler)
# shellcheck source=hack/lib/kube-ldflags.sh
source "$HACK/lib/kube-ldflags.sh"

log() { printf '[kube-node] %s\n' "$*" >&2; }
die() { printf '[kube-node] ERROR: %s\n' "$*" >&2; exit 1; }
low() { nice -n 19 ionice -c3 "$@"; }

start=$(date +%s)
# kube-apiserver, kubectl, and the wrapper module with the staging modules replaced.
assets="$(K8S_VERSION="$K8S_VERSION" bash "$HACK/setup-envtest.sh" | tail -n 1)"
mkdir -p "$OUT"
missing=()
for c in "${COMMANDS[@]}"; do [[ -x "$OUT/$c" ]] || missing+=("$c"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  # The wrapper module is setup-envtest's: hold its lock while its go.mod changes and the builds run.
  exec 9>"$CACHE_ROOT/.setup-envtest.lock"
  flock -n 9 || { log "waiting for $CACHE_ROOT/.setup-envtest.lock"; flock 9; }
  export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=mod" GOMAXPROCS="${GOMAXPROCS:-1}"
  command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
  cd "$CACHE_ROOT/build/kube-$K8S_VERSION" || die "no wrapper module: hack/setup-envtest.sh did not prepare it"
  pkgs=()
  for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c@v$K8S_VERSION"); done
  low go get -tool "${pkgs[@]}" || die "go get -tool ${pkgs[*]} failed"
  ld="$(kube_ldflags "$K8S_VERSION")"
  for c in "${missing[@]}"; do
    t=$(date +%s)
    log "compiling $c v$K8S_VERSION"
    low go build -p 1 -trimpath -ldflags "$ld" -o "$OUT/$c.tmp" "k8s.io/kubernetes/cmd/$c" || die "go build $c failed"
    if [[ "$c" == kubeadm ]]; then got=$("$OUT/$c.tmp" version -o short 2>&1) || true
    else got=$("$OUT/$c.tmp" --version 2>&1) || true; fi
    [[ "$got" == *"v$K8S_VERSION"* ]] || die "the built $c reports '$got', expected v$K8S_VERSION"
    mv "$OUT/$c.tmp" "$OUT/$c"
    log "$c built in $(( $(date +%s) - t )) s"
  done
fi
for c in kube-apiserver kubectl; do cmp -s "$assets/$c" "$OUT/$c" || cp "$assets/$c" "$OUT/$c"; done
log "ready in $(( $(date +%s) - start )) s: $OUT"
echo "$OUT"
