#!/usr/bin/env bash
# Build the CNCF Distribution registry (github.com/distribution/distribution/v3, cmd/registry) with `go install`
# from the Go module proxy into the version-keyed cache: the OCI registry the Helm tests push our charts to and
# install them from, as users pull charts (oci://). Idempotent; concurrent runs wait on one lock. Prints the
# binary's path on the last line of stdout.
#
# Environment: AIGW_CACHE_DIR (cache root), REGISTRY_VERSION (3.1.2).
set -euo pipefail

REGISTRY_VERSION="${REGISTRY_VERSION:-3.1.2}"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
# shellcheck source=hack/lib/go-install-cached.sh
source "$(dirname "$0")/lib/go-install-cached.sh"

module="github.com/distribution/distribution/v3"
go_install_cached setup-registry "$CACHE_ROOT/registry/$REGISTRY_VERSION" "$module@v$REGISTRY_VERSION" \
  "$module/cmd/registry" "-s -w -X $module/version.version=v$REGISTRY_VERSION" "v$REGISTRY_VERSION" --version
