#!/usr/bin/env bash
# Build Envoy's global rate limit service (github.com/envoyproxy/ratelimit, the one Envoy Gateway deploys as
# `envoy-ratelimit`) with `go install` from the Go module proxy into the version-keyed cache. The e2e token-budget
# scenario (tests/realparts/ratelimit.py) runs it as a process, with redis-server as its store and Envoy Gateway's
# rate limit xDS server as its config source. Idempotent: well under a second when built; concurrent runs wait on
# one lock. Prints the binary's path on the last line of stdout.
#
# The module has no release tags the Go module proxy serves, only pseudo-versions: the pin is the one Envoy
# Gateway v1.9.0's go.mod requires, so the service speaks the config protocol that Envoy Gateway serves.
#
# Environment: AIGW_CACHE_DIR (cache root), RATELIMIT_VERSION (a pseudo-version without the leading v).
set -euo pipefail

RATELIMIT_VERSION="${RATELIMIT_VERSION:-1.4.1-0.20260122083618-3fb702589d36}"
MODULE="github.com/envoyproxy/ratelimit"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
OUT="$CACHE_ROOT/ratelimit/$RATELIMIT_VERSION"
# shellcheck source=hack/lib/go-install-cached.sh
source "$(dirname "$0")/lib/go-install-cached.sh"

# No version args: the service has no version flag (it would start serving), so the build info is checked.
binary=$(go_install_cached setup-ratelimit "$OUT" "$MODULE@v$RATELIMIT_VERSION" "$MODULE/src/service_cmd" \
  "-s -w" "$MODULE"$'\t'"v$RATELIMIT_VERSION")
# Upstream's image calls the service `ratelimit`; so does ours.
ln -sfn "$(basename "$binary")" "$OUT/bin/ratelimit"
echo "$OUT/bin/ratelimit"
