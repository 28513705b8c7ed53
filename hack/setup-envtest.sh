#!/usr/bin/env bash
# Build the real Kubernetes control plane for our tests from the Go module proxy:
# kube-apiserver and kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3), and extract the
# Gateway API + Envoy Gateway CRDs from the github.com/envoyproxy/gateway module, and the Inference Extension's
# v1 InferencePool and v1alpha2 InferenceObjective CRDs from the sigs.k8s.io/gateway-api-inference-extension module.
#
# Binaries land in a version-keyed cache outside the repo and are built only when missing, so a warm run
# takes seconds. Prints the asset directory on the last line of stdout.
#
# Environment:
#   AIGW_CACHE_DIR      cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ai-gateway-py)
#   KUBEBUILDER_ASSETS  when set and it already holds kube-apiserver, etcd and kubectl, it is used as is
#   K8S_VERSION, ETCD_VERSION, EG_VERSION, GAIE_VERSION  pins (defaults below)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
EG_VERSION="${EG_VERSION:-1.9.0}"
GAIE_VERSION="${GAIE_VERSION:-1.5.0}"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
ASSETS="$CACHE_ROOT/testbin/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}"
CRDS="$CACHE_ROOT/crds/eg-${EG_VERSION}"
GAIE_CRDS="$CACHE_ROOT/crds/gaie-${GAIE_VERSION}"
# The Inference Extension's GA pool (selects Pods) and the objective a request names by header. Our own
# v1alpha2 InferencePool lives in another group, so both pools coexist.
GAIE_CRD_FILES=(inference.networking.k8s.io_inferencepools.yaml inference.networking.x-k8s.io_inferenceobjectives.yaml)

# shellcheck source=hack/lib/kube-ldflags.sh
source "$(dirname "$0")/lib/kube-ldflags.sh"

log() { printf '[setup-envtest] %s\n' "$*" >&2; }
die() { printf '[setup-envtest] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" && -x "$KUBEBUILDER_ASSETS/kubectl" ]]; then
  ASSETS="$KUBEBUILDER_ASSETS"
fi

# Go is needed only to build: a warm cache works on a machine without it.
need_go() {
  [[ -n "${GO_CHECKED:-}" ]] && return 0
  # A non-interactive shell (CI) may not have the official tarball's bin directory on PATH.
  if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then PATH="/usr/local/go/bin:$PATH"; fi
  command -v go >/dev/null 2>&1 \
    || die "Go is not installed (or not on PATH). Building kube-apiserver v$K8S_VERSION needs Go >= 1.26 (https://go.dev/dl), or point KUBEBUILDER_ASSETS at prebuilt kube-apiserver, etcd and kubectl."
  local minor
  minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  [[ "$minor" =~ ^[0-9]+$ && "$minor" -ge 26 ]] \
    || die "Go $(go env GOVERSION) is too old: kube-apiserver v$K8S_VERSION needs Go >= 1.26."
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod" GOTOOLCHAIN=local
  log "fetching k8s.io/kubernetes@v$K8S_VERSION's go.mod from $(go env GOPROXY)"
  go list -m -json "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null 2>"$CACHE_ROOT/proxy-check.log" \
    || die "cannot fetch k8s.io/kubernetes@v$K8S_VERSION through the Go module proxy ($(go env GOPROXY)): $(tail -n 3 "$CACHE_ROOT/proxy-check.log")"
  GO_CHECKED=1
}

# Run a long command, printing a line every 60 s so a cold build never looks hung.
with_heartbeat() {
  local what="$1"; shift
  local began=$SECONDS
  # fd 9 (the build lock) is closed in the heartbeat, or its last `sleep` would hold the lock up to 60 s.
  ( exec 9>&-; while sleep 60; do log "... still $what ($(( SECONDS - began )) s)"; done ) &
  local beat=$! rc=0
  "$@" || rc=$?
  kill "$beat" 2>/dev/null; wait "$beat" 2>/dev/null || true
  return "$rc"
}

# Check that a freshly built binary runs and reports the version we pinned.
check_version() {
  local bin="$1" want="$2" got
  # Not `| head`: with pipefail an early-closed pipe would fail the check.
  if [[ "$bin" == */kubectl* ]]; then got=$("$bin" version --client 2>&1) || die "$bin does not run: $got"
  else got=$("$bin" --version 2>&1) || die "$bin does not run: $got"; fi
  [[ "$got" == *"$want"* ]] || die "$bin reports '$got', expected $want"
}

build_kube() {
  local k8s_minor staging work modfile ld
  k8s_minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  staging="0.$k8s_minor.$(echo "$K8S_VERSION" | cut -d. -f3)"
  work="$CACHE_ROOT/build/kube-$K8S_VERSION"
  mkdir -p "$work" "$ASSETS"
  cd "$work"
  if [[ ! -f go.mod ]]; then
    go mod init local/kube-build >/dev/null 2>&1
    go mod edit -go=1.26.0 -godebug=default=go1.26
  fi
  log "resolving the staging modules of k8s.io/kubernetes v$K8S_VERSION"
  modfile=$(go list -m -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  local n=0
  for m in $(sed -n 's|^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*|\1|p' "$modfile"); do
    go mod edit -replace="$m=$m@v$staging"; n=$((n+1))
  done
  [[ $n -gt 0 ]] || die "found no staging modules in $modfile"
  log "replaced $n staging modules with v$staging; downloading modules (cold: a few minutes)"
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION"
  ld="$(kube_ldflags "$K8S_VERSION")"
  if [[ ! -x "$ASSETS/kube-apiserver" ]]; then
    log "compiling kube-apiserver v$K8S_VERSION (cold: 4-20 min on 2 cores)"
    with_heartbeat "compiling kube-apiserver" \
      go build -trimpath -ldflags "$ld" -o "$ASSETS/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    check_version "$ASSETS/kube-apiserver.tmp" "Kubernetes v$K8S_VERSION"
    mv "$ASSETS/kube-apiserver.tmp" "$ASSETS/kube-apiserver"
  fi
  if [[ ! -x "$ASSETS/kubectl" ]]; then
    log "compiling kubectl v$K8S_VERSION"
    with_heartbeat "compiling kubectl" \
      go build -trimpath -ldflags "$ld" -o "$ASSETS/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
    check_version "$ASSETS/kubectl.tmp" "Client Version: v$K8S_VERSION"
    mv "$ASSETS/kubectl.tmp" "$ASSETS/kubectl"
  fi
}

build_etcd() {
  local work="$CACHE_ROOT/build/etcd-$ETCD_VERSION"
  mkdir -p "$work" "$ASSETS"
  cd "$work"
  [[ -f go.mod ]] || { go mod init local/etcd-build >/dev/null 2>&1; go mod edit -go=1.26.0; }
  log "building etcd v$ETCD_VERSION (cold: 2-4 min)"
  go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  with_heartbeat "compiling etcd" go build -trimpath -ldflags "-s -w" -o "$ASSETS/etcd.tmp" go.etcd.io/etcd/server/v3
  check_version "$ASSETS/etcd.tmp" "etcd Version: $ETCD_VERSION"
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

extract_crds() {
  local dir
  log "extracting Gateway API and Envoy Gateway CRDs from github.com/envoyproxy/gateway@v$EG_VERSION"
  dir=$(cd "$CACHE_ROOT" && go mod download -json "github.com/envoyproxy/gateway@v$EG_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  rm -rf "$CRDS.tmp"; mkdir -p "$CRDS.tmp"
  cp "$dir/charts/gateway-helm/charts/crds/crds/gatewayapi-crds.yaml" "$CRDS.tmp/"
  cp "$dir"/charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_*.yaml "$CRDS.tmp/"
  chmod -R u+w "$CRDS.tmp"
  rm -rf "$CRDS"; mv "$CRDS.tmp" "$CRDS"
}

extract_gaie_crds() {
  local dir crd
  log "extracting the Inference Extension's CRDs from sigs.k8s.io/gateway-api-inference-extension@v$GAIE_VERSION"
  dir=$(cd "$CACHE_ROOT" && go mod download -json "sigs.k8s.io/gateway-api-inference-extension@v$GAIE_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  rm -rf "$GAIE_CRDS.tmp"; mkdir -p "$GAIE_CRDS.tmp"
  for crd in "${GAIE_CRD_FILES[@]}"; do
    [[ -f "$dir/config/crd/bases/$crd" ]] || die "$dir/config/crd/bases/$crd is missing from the module"
    cp "$dir/config/crd/bases/$crd" "$GAIE_CRDS.tmp/"
  done
  chmod -R u+w "$GAIE_CRDS.tmp"
  rm -rf "$GAIE_CRDS"; mv "$GAIE_CRDS.tmp" "$GAIE_CRDS"
}

start=$(date +%s)
mkdir -p "$CACHE_ROOT" || die "cannot create the cache directory $CACHE_ROOT (set AIGW_CACHE_DIR)"
ready() { [[ -x "$ASSETS/kube-apiserver" && -x "$ASSETS/kubectl" && -x "$ASSETS/etcd" && -f "$CRDS/gatewayapi-crds.yaml" && -f "$GAIE_CRDS/${GAIE_CRD_FILES[0]}" ]]; }
if ! ready; then
  # One build at a time per cache: a second caller waits, then finds the binaries built.
  exec 9>"$CACHE_ROOT/.setup-envtest.lock"
  if ! flock -n 9; then
    log "another setup-envtest run holds $CACHE_ROOT/.setup-envtest.lock; waiting for it"
    flock 9
  fi
  if [[ ! -x "$ASSETS/kube-apiserver" || ! -x "$ASSETS/kubectl" ]]; then need_go; build_kube; fi
  if [[ ! -x "$ASSETS/etcd" ]]; then need_go; build_etcd; fi
  if [[ ! -f "$CRDS/gatewayapi-crds.yaml" ]]; then need_go; extract_crds; fi
  if [[ ! -f "$GAIE_CRDS/${GAIE_CRD_FILES[0]}" ]]; then need_go; extract_gaie_crds; fi
fi
log "ready in $(( $(date +%s) - start )) s: $ASSETS (CRDs: $CRDS, $GAIE_CRDS)"
echo "$ASSETS"
