#!/usr/bin/env bash
# Build Helm (helm.sh/helm/v4, cmd/helm) with `go install` from the Go module proxy into the version-keyed cache,
# like the other real parts. Idempotent: a warm run takes milliseconds. Concurrent runs wait on one lock.
# Prints the path of the helm binary on the last line of stdout.
#
# Environment: AIGW_CACHE_DIR (cache root), HELM_VERSION (4.3.2; a 3.x version builds helm.sh/helm/v3).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-4.3.2}"
HELM_MAJOR="${HELM_VERSION%%.*}"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
OUT="$CACHE_ROOT/helm/$HELM_VERSION"
MODULE="helm.sh/helm/v$HELM_MAJOR"

log() { printf '[setup-helm] %s\n' "$*" >&2; }
die() { printf '[setup-helm] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$HELM_VERSION" =~ ^[34]\.[0-9]+\.[0-9]+$ ]] || die "HELM_VERSION=$HELM_VERSION: expected 3.x.y or 4.x.y"
start=$(date +%s)
mkdir -p "$OUT/bin" || die "cannot create $OUT (set AIGW_CACHE_DIR)"
if [[ ! -x "$OUT/bin/helm" ]]; then
  # One build at a time per cache: a second caller waits, then finds the binary built.
  exec 9>"$CACHE_ROOT/.setup-helm.lock"
  if ! flock -n 9; then
    log "another setup-helm run holds $CACHE_ROOT/.setup-helm.lock; waiting for it"
    flock 9
  fi
fi
if [[ ! -x "$OUT/bin/helm" ]]; then
  # A non-interactive shell (CI) may lack the Go toolchain's usual directory on PATH.
  if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then export PATH="/usr/local/go/bin:$PATH"; fi
  command -v go >/dev/null 2>&1 || die "Go is not installed (or not on PATH): Helm v$HELM_VERSION needs Go >= 1.26."
  minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  [[ "$minor" =~ ^[0-9]+$ && "$minor" -ge 26 ]] || die "Go $(go env GOVERSION) is too old: Helm v$HELM_VERSION needs Go >= 1.26."
  export CGO_ENABLED=0 GOTOOLCHAIN=local
  go list -m -json "$MODULE@v$HELM_VERSION" >/dev/null 2>"$OUT/proxy-check.log" \
    || die "cannot fetch $MODULE@v$HELM_VERSION through the Go module proxy ($(go env GOPROXY)): $(tail -n 3 "$OUT/proxy-check.log")"
  log "building helm v$HELM_VERSION from $MODULE (cold: 10 min measured on 2 cores shared with other Go builds)"
  # The version ldflags are the ones Helm's own Makefile sets for a tagged build, so `helm version` is honest.
  GOBIN="$OUT/bin.tmp" go install -trimpath \
    -ldflags "-s -w -X $MODULE/internal/version.version=v$HELM_VERSION -X $MODULE/internal/version.gitTreeState=clean" \
    "$MODULE/cmd/helm@v$HELM_VERSION" || die "go install $MODULE/cmd/helm@v$HELM_VERSION failed"
  got=$("$OUT/bin.tmp/helm" version --short 2>&1) || die "the built helm does not run: $got"
  [[ "$got" == "v$HELM_VERSION"* ]] || die "the built helm reports '$got', expected v$HELM_VERSION"
  mv "$OUT/bin.tmp/helm" "$OUT/bin/helm"
  rmdir "$OUT/bin.tmp"
fi
log "ready in $(( $(date +%s) - start )) s: $OUT/bin/helm"
echo "$OUT/bin/helm"
