#!/usr/bin/env bash
# Build hack/runc-shim (a static binary, Go standard library only) into the cache, keyed by the hash of its
# source, so the host's dockerd and the kind node image use the same build. Idempotent. Prints the binary's path
# on the last line of stdout.
#
# Environment: AIGW_CACHE_DIR (cache root).
set -euo pipefail

SRC="$(cd "$(dirname "$0")/runc-shim" && pwd)"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
key="$(cat "$SRC/go.mod" "$SRC/main.go" | sha256sum | cut -c1-16)"
out="$CACHE_ROOT/runc-shim/$key"
if [[ ! -x "$out/runc-shim" ]]; then
  command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
  command -v go >/dev/null 2>&1 || { printf '[runc-shim] ERROR: Go is not installed\n' >&2; exit 1; }
  mkdir -p "$out"
  (cd "$SRC" && CGO_ENABLED=0 GOTOOLCHAIN=local nice -n 19 go build -trimpath -ldflags '-s -w' -o "$out/runc-shim.tmp" .) \
    || { printf '[runc-shim] ERROR: go build failed\n' >&2; exit 1; }
  mv "$out/runc-shim.tmp" "$out/runc-shim"
fi
echo "$out/runc-shim"
