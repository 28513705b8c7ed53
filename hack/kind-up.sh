#!/usr/bin/env bash
# Bring up a real kind cluster running the whole gateway the way users run it: Envoy Gateway v$EG_VERSION from
# its Helm chart with our extension server as its extensionManager (the values in
# charts/ai-gateway-py/files/envoy-gateway-values.yaml), our CRDs, RBAC and controller with our Helm charts
# (charts/ai-gateway-py-crds, charts/ai-gateway-py), or with AIGW_INSTALL=kustomize from config/ (`make deploy`).
# Needs a container runtime (docker or podman; `sudo make docker-engine`), kind and kubectl; helm is built by
# hack/setup-helm.sh when not on PATH.
#
# Idempotent: an existing cluster is reused, the charts are upgraded, the manifests re-applied.
#
# Environment:
#   KIND_CLUSTER        cluster name (default ai-gateway-py)
#   EG_VERSION          Envoy Gateway chart version (default 1.9.0)
#   IMG                 controller/ext_proc image (default ai-gateway-py:dev), built from ./Dockerfile and loaded
#                       into the cluster when a Dockerfile exists; otherwise it must be pullable
#   BASE_IMAGE          the Dockerfile's base (default its own; aigw.local/python:trixie from `make base-images`
#                       where no image registry is reachable)
#   AIGW_INSTALL        helm (default: charts/ai-gateway-py-crds + charts/ai-gateway-py) or kustomize (`make deploy`)
#   AIGW_NAMESPACE      our namespace (default envoy-ai-gateway-system; must match config/default)
#   AIGW_SERVICE        our controller Service (default ai-gateway-controller; must match config/manager)
#   AIGW_EXTSERVER_PORT its extension-server port (default 1063)
#   AIGW_KIND_LOCAL     1: no image registry needed. The node image (hack/build-kind-node.sh, with
#                       config/kind/cluster.yaml), Envoy Gateway's and Envoy's images and its chart
#                       (hack/build-gateway-images.sh) and our image on aigw.local/python (BASE_IMAGE) are built
#                       here; kind and kubectl come from the cache when not on PATH
set -euo pipefail

KIND_CLUSTER="${KIND_CLUSTER:-ai-gateway-py}"
EG_VERSION="${EG_VERSION:-1.9.0}"
IMG="${IMG:-ai-gateway-py:dev}"
AIGW_INSTALL="${AIGW_INSTALL:-helm}"
AIGW_NAMESPACE="${AIGW_NAMESPACE:-envoy-ai-gateway-system}"
AIGW_SERVICE="${AIGW_SERVICE:-ai-gateway-controller}"
AIGW_EXTSERVER_PORT="${AIGW_EXTSERVER_PORT:-1063}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"

log() { printf '[kind-up] %s\n' "$*" >&2; }
die() { printf '[kind-up] ERROR: %s\n' "$*" >&2; exit 1; }

AIGW_KIND_LOCAL="${AIGW_KIND_LOCAL:-0}"
create_args=(--wait 120s)
if [[ "$AIGW_KIND_LOCAL" == 1 ]]; then
  command -v kind >/dev/null 2>&1 || PATH="$(dirname "$(bash "$REPO/hack/setup-kind.sh" | tail -n 1)"):$PATH"
  command -v kubectl >/dev/null 2>&1 || PATH="$(bash "$REPO/hack/setup-envtest.sh" | tail -n 1):$PATH"
  export PATH
  create_args+=(--image "$(bash "$REPO/hack/build-kind-node.sh" | tail -n 1)" --config "$REPO/config/kind/cluster.yaml")
  mapfile -t gateway < <(bash "$REPO/hack/build-gateway-images.sh")
  export BASE_IMAGE="${BASE_IMAGE:-${AIGW_IMAGE_PREFIX:-aigw.local}/python:trixie}"
fi

for tool in kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done
[[ "$AIGW_INSTALL" == kustomize || "$AIGW_INSTALL" == helm ]] || die "AIGW_INSTALL=$AIGW_INSTALL: kustomize or helm"
HELM="$(command -v helm || bash "$REPO/hack/setup-helm.sh" | tail -n 1)" || die "no helm, and hack/setup-helm.sh failed"
RUNTIME=""
for r in docker podman; do
  if command -v "$r" >/dev/null 2>&1 && "$r" info >/dev/null 2>&1; then RUNTIME=$r; break; fi
done
[[ -n "$RUNTIME" ]] || die "no working container runtime (docker or podman): kind needs one"
[[ "$RUNTIME" == podman ]] && export KIND_EXPERIMENTAL_PROVIDER=podman

work=$(mktemp -d)
cluster_up=0
# On failure once the cluster exists: its Pods and latest events, so a slow machine (Pending, pulling, probes)
# is told apart from a broken component without keeping the cluster.
diagnose() {
  log "failed; the cluster's state:"
  kubectl get pods -A -o wide >&2 || true
  kubectl get events -A --sort-by=.lastTimestamp 2>&1 | tail -n 40 >&2 || true
}
trap 'rc=$?; rm -rf "$work"; if [[ $rc -ne 0 && $cluster_up -eq 1 ]]; then diagnose; fi; exit $rc' EXIT

if ! kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  log "creating kind cluster $KIND_CLUSTER"
  kind create cluster --name "$KIND_CLUSTER" "${create_args[@]}"
fi
kubectl config use-context "kind-$KIND_CLUSTER" >/dev/null
cluster_up=1

if [[ -f "$REPO/Dockerfile" ]]; then
  log "building $IMG and loading it into the cluster"
  "$RUNTIME" build ${BASE_IMAGE:+--build-arg "BASE_IMAGE=$BASE_IMAGE"} -t "$IMG" "$REPO"
  if [[ "$RUNTIME" == docker ]]; then
    kind load docker-image "$IMG" --name "$KIND_CLUSTER"
  else
    # `kind load docker-image` reads docker's image store only, and podman stores an unqualified name as
    # localhost/<name>, which the kubelet would not match with the manifests' <name> (docker.io/library/<name>):
    # save the image under the name the kubelet resolves and load that archive.
    ref="$IMG"
    first="${IMG%%/*}"
    if [[ "$IMG" != */* ]]; then
      ref="docker.io/library/$IMG"
    elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then
      ref="docker.io/$IMG"
    fi
    podman tag "$IMG" "$ref"
    podman save --format docker-archive -o "$work/image.tar" "$ref"
    kind load image-archive "$work/image.tar" --name "$KIND_CLUSTER"
  fi
fi

# Envoy Gateway first: its chart installs the Gateway API CRDs our controller watches.
log "installing Envoy Gateway v$EG_VERSION (extensionManager -> $AIGW_SERVICE.$AIGW_NAMESPACE:$AIGW_EXTSERVER_PORT)"
eg_chart=(oci://docker.io/envoyproxy/gateway-helm --version "v$EG_VERSION")
if [[ "$AIGW_KIND_LOCAL" == 1 ]]; then
  kind load docker-image "${gateway[0]}" "${gateway[1]}" --name "$KIND_CLUSTER"
  eg_chart=("${gateway[2]}")  # its values name those images
fi
"$HELM" upgrade --install eg "${eg_chart[@]}" \
  --namespace envoy-gateway-system --create-namespace \
  -f "$REPO/charts/ai-gateway-py/files/envoy-gateway-values.yaml" \
  --set "config.envoyGateway.extensionManager.service.fqdn.hostname=$AIGW_SERVICE.$AIGW_NAMESPACE.svc.cluster.local" \
  --set "config.envoyGateway.extensionManager.service.fqdn.port=$AIGW_EXTSERVER_PORT" \
  --wait --timeout 5m

if [[ "$AIGW_INSTALL" == helm ]]; then
  log "installing our CRDs and controller with helm"
  [[ "${IMG##*/}" == *:* ]] || die "IMG=$IMG: AIGW_INSTALL=helm needs a tag (<repository>:<tag>)"
  "$HELM" upgrade --install aigw-crds "$REPO/charts/ai-gateway-py-crds"
  # Helm creates crds/ on the first install only: apply them so an upgrade of a reused cluster gets new fields.
  kubectl apply --server-side -f "$REPO/charts/ai-gateway-py-crds/crds"
  "$HELM" upgrade --install aigw "$REPO/charts/ai-gateway-py" --namespace "$AIGW_NAMESPACE" --create-namespace \
    --set "image.repository=${IMG%:*}" --set "image.tag=${IMG##*:}" --set "fullnameOverride=$AIGW_SERVICE" \
    --set "controller.extensionServerPort=$AIGW_EXTSERVER_PORT"
else
  log "deploying our CRDs, RBAC and controller"
  make -C "$REPO" deploy IMG="$IMG"
fi
kubectl -n "$AIGW_NAMESPACE" rollout status "deployment/$AIGW_SERVICE" --timeout=180s
kubectl -n envoy-gateway-system rollout status deployment/envoy-gateway --timeout=180s
log "ready: kubectl apply -f config/samples/ to try it"
