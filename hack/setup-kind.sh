#!/usr/bin/env bash
# Build kind (sigs.k8s.io/kind) with `go install` from the Go module proxy into the version-keyed cache, at low
# CPU priority (run it under nice; GOMAXPROCS defaults to 1). Idempotent; concurrent runs wait on one lock. Prints the binary's path on the last line of stdout.
#
# Environment: AIGW_CACHE_DIR (cache root), KIND_VERSION (0.33.0).
set -euo pipefail

KIND_VERSION="${KIND_VERSION:-0.33.0}"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
# shellcheck source=hack/lib/go-install-cached.sh
source "$(dirname "$0")/lib/go-install-cached.sh"

export GOMAXPROCS="${GOMAXPROCS:-1}"
go_install_cached setup-kind "$CACHE_ROOT/kind/$KIND_VERSION" "sigs.k8s.io/kind@v$KIND_VERSION" \
  sigs.k8s.io/kind "-s -w" "kind v$KIND_VERSION" version
