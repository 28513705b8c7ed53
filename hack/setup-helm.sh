#!/usr/bin/env bash
# Build Helm (helm.sh/helm/v4, cmd/helm) with `go install` from the Go module proxy into the version-keyed cache,
# like the other real parts. Idempotent: a warm run takes milliseconds. Concurrent runs wait on one lock.
# Prints the path of the helm binary on the last line of stdout. Cold: 616 s measured on 2 cores shared with
# two other Go builds.
#
# Environment: AIGW_CACHE_DIR (cache root), HELM_VERSION (4.3.2; a 3.x version builds helm.sh/helm/v3).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-4.3.2}"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
# shellcheck source=hack/lib/go-install-cached.sh
source "$(dirname "$0")/lib/go-install-cached.sh"

[[ "$HELM_VERSION" =~ ^[34]\.[0-9]+\.[0-9]+$ ]] \
  || { printf '[setup-helm] ERROR: HELM_VERSION=%s: expected 3.x.y or 4.x.y\n' "$HELM_VERSION" >&2; exit 1; }
module="helm.sh/helm/v${HELM_VERSION%%.*}"
# The version ldflags are the ones Helm's own Makefile sets for a tagged build, so `helm version` is honest.
go_install_cached setup-helm "$CACHE_ROOT/helm/$HELM_VERSION" "$module@v$HELM_VERSION" "$module/cmd/helm" \
  "-s -w -X $module/internal/version.version=v$HELM_VERSION -X $module/internal/version.gitTreeState=clean" \
  "v$HELM_VERSION" version --short
