#!/usr/bin/env bash
# Build the Gateway API Inference Extension's endpoint picker (EPP) v$EPP_VERSION with `go install` from the Go
# module proxy into the version-keyed cache, and copy the module's v1 InferencePool and InferenceObjective CRDs
# next to it. The routing
# benchmark and the EPP harness (tests/realparts/epp.py) run it as the peer of our ext_proc. Idempotent: well
# under a second when built. Prints the directory holding bin/epp and crds/ on the last line of stdout.
#
# Environment: AIGW_CACHE_DIR (cache root), EPP_VERSION (1.5.0: the last release with the full EPP).
set -euo pipefail

EPP_VERSION="${EPP_VERSION:-1.5.0}"
MODULE="sigs.k8s.io/gateway-api-inference-extension"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
OUT="$CACHE_ROOT/epp/epp-${EPP_VERSION}"
# The v1 InferencePool (the EPP's pool) and the InferenceObjective (a request's priority, by header).
CRDS=(inference.networking.k8s.io_inferencepools.yaml inference.networking.x-k8s.io_inferenceobjectives.yaml)

log() { printf '[setup-epp] %s\n' "$*" >&2; }
die() { printf '[setup-epp] ERROR: %s\n' "$*" >&2; exit 1; }

ready() {
  [[ -x "$OUT/bin/epp" ]] || return 1
  local crd; for crd in "${CRDS[@]}"; do [[ -f "$OUT/crds/$crd" ]] || return 1; done
}

need_go() {
  # A non-interactive shell (CI) may lack the Go toolchain's usual directory on PATH.
  if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then export PATH="/usr/local/go/bin:$PATH"; fi
  command -v go >/dev/null 2>&1 \
    || die "Go is not installed (or not on PATH): the EPP v$EPP_VERSION needs Go >= 1.25 (https://go.dev/dl)."
  local minor
  minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  [[ "$minor" =~ ^[0-9]+$ && "$minor" -ge 25 ]] \
    || die "Go $(go env GOVERSION) is too old: the EPP v$EPP_VERSION needs Go >= 1.25."
  export CGO_ENABLED=0 GOTOOLCHAIN=local
  go list -m -json "$MODULE@v$EPP_VERSION" >/dev/null 2>"$CACHE_ROOT/epp-proxy-check.log" \
    || die "cannot fetch $MODULE@v$EPP_VERSION through the Go module proxy ($(go env GOPROXY)): $(tail -n 3 "$CACHE_ROOT/epp-proxy-check.log")"
}

start=$(date +%s)
mkdir -p "$CACHE_ROOT" || die "cannot create the cache directory $CACHE_ROOT (set AIGW_CACHE_DIR)"
if ! ready; then
  # One build at a time per cache: a second caller waits, then finds the binary built.
  exec 9>"$CACHE_ROOT/.setup-epp.lock"
  if ! flock -n 9; then
    log "another setup-epp run holds $CACHE_ROOT/.setup-epp.lock; waiting for it"
    flock 9
  fi
  if ! ready; then
    need_go
    mkdir -p "$OUT/bin" "$OUT/crds"
    if [[ ! -x "$OUT/bin/epp" ]]; then
      log "building epp v$EPP_VERSION (cold: about 3 min on 2 cores)"
      rm -rf "$OUT/gobin.tmp"
      GOBIN="$OUT/gobin.tmp" go install -trimpath -ldflags "-s -w" "$MODULE/cmd/epp@v$EPP_VERSION" \
        || die "go install $MODULE/cmd/epp@v$EPP_VERSION failed (see above)"
      "$OUT/gobin.tmp/epp" --help >/dev/null 2>&1 || die "the built epp does not run: $OUT/gobin.tmp/epp --help"
      mv "$OUT/gobin.tmp/epp" "$OUT/bin/epp"
      rm -rf "$OUT/gobin.tmp"
    fi
    dir=$(cd "$CACHE_ROOT" && go mod download -json "$MODULE@v$EPP_VERSION" \
      | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])') \
      || die "cannot download $MODULE@v$EPP_VERSION's sources"
    for crd in "${CRDS[@]}"; do
      [[ -f "$dir/config/crd/bases/$crd" ]] || die "$dir/config/crd/bases/$crd is missing from the module"
      cp "$dir/config/crd/bases/$crd" "$OUT/crds/$crd.tmp"
      chmod u+w "$OUT/crds/$crd.tmp"
      mv "$OUT/crds/$crd.tmp" "$OUT/crds/$crd"
    done
    # The EPP's own Envoy configuration, kept for reference (the benchmark writes its own from it).
    cp "$dir/test/testdata/envoy.yaml" "$OUT/envoy.yaml" 2>/dev/null && chmod u+w "$OUT/envoy.yaml" || true
  fi
fi
log "ready in $(( $(date +%s) - start )) s: $OUT"
echo "$OUT"
