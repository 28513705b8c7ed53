#!/usr/bin/env bash
# Build the real Kubernetes control plane for our tests from the Go module proxy:
# kube-apiserver and kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3), and extract the
# Gateway API + Envoy Gateway CRDs from the github.com/envoyproxy/gateway module.
#
# Binaries land in a version-keyed cache outside the repo and are built only when missing, so a warm run
# takes seconds. Prints the asset directory on the last line of stdout.
#
# Environment:
#   AIGW_CACHE_DIR      cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ai-gateway-py)
#   KUBEBUILDER_ASSETS  when set and it already holds kube-apiserver, etcd and kubectl, it is used as is
#   K8S_VERSION, ETCD_VERSION, EG_VERSION  pins (defaults below)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
EG_VERSION="${EG_VERSION:-1.9.0}"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
ASSETS="$CACHE_ROOT/testbin/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}"
CRDS="$CACHE_ROOT/crds/eg-${EG_VERSION}"

log() { printf '[setup-envtest] %s\n' "$*" >&2; }
die() { printf '[setup-envtest] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" && -x "$KUBEBUILDER_ASSETS/kubectl" ]]; then
  ASSETS="$KUBEBUILDER_ASSETS"
fi

command -v go >/dev/null 2>&1 || die "Go is not installed. kube-apiserver v$K8S_VERSION needs Go >= 1.26 (https://go.dev/dl)."
GO_MINOR=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[[ "$GO_MINOR" -ge 26 ]] || die "Go $(go env GOVERSION) is too old: kube-apiserver v$K8S_VERSION needs Go >= 1.26."
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod" GOTOOLCHAIN=local

check_proxy() {
  go list -m -json "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null 2>&1 \
    || die "cannot reach the Go module proxy ($(go env GOPROXY)) to fetch k8s.io/kubernetes@v$K8S_VERSION."
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
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor -X $p.gitTreeState=clean"
  done
  if [[ ! -x "$ASSETS/kube-apiserver" ]]; then
    log "compiling kube-apiserver v$K8S_VERSION (cold: 10-20 min on 2 cores)"
    go build -trimpath -ldflags "$ld" -o "$ASSETS/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    mv "$ASSETS/kube-apiserver.tmp" "$ASSETS/kube-apiserver"
  fi
  if [[ ! -x "$ASSETS/kubectl" ]]; then
    log "compiling kubectl v$K8S_VERSION"
    go build -trimpath -ldflags "$ld" -o "$ASSETS/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
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
  go build -trimpath -ldflags "-s -w" -o "$ASSETS/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

extract_crds() {
  local dir
  log "extracting Gateway API and Envoy Gateway CRDs from github.com/envoyproxy/gateway@v$EG_VERSION"
  dir=$(cd "$CACHE_ROOT" && go mod download -json "github.com/envoyproxy/gateway@v$EG_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$CRDS.tmp"
  cp "$dir/charts/gateway-helm/charts/crds/crds/gatewayapi-crds.yaml" "$CRDS.tmp/"
  cp "$dir"/charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_*.yaml "$CRDS.tmp/"
  chmod -R u+w "$CRDS.tmp"
  rm -rf "$CRDS"; mv "$CRDS.tmp" "$CRDS"
}

start=$(date +%s)
mkdir -p "$CACHE_ROOT"
if [[ ! -x "$ASSETS/kube-apiserver" || ! -x "$ASSETS/kubectl" ]]; then check_proxy; build_kube; fi
if [[ ! -x "$ASSETS/etcd" ]]; then check_proxy; build_etcd; fi
if [[ ! -f "$CRDS/gatewayapi-crds.yaml" ]]; then check_proxy; extract_crds; fi
log "ready in $(( $(date +%s) - start )) s: $ASSETS (CRDs: $CRDS)"
echo "$ASSETS"
