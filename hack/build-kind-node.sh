#!/usr/bin/env bash
# The kind node image for Kubernetes v$K8S_VERSION, assembled the way `kind build node-image` does it (a build
# container from the base, binaries copied in, images imported into its containerd with --no-unpack, then
# `docker commit`), but from what hack/ built here instead of a download and a registry:
#   - base: $AIGW_IMAGE_PREFIX/kind-base:v$KIND_VERSION (hack/build-kind-base.sh);
#   - kubeadm, kubelet, kubectl in /usr/bin (hack/build-kube-node.sh);
#   - the control plane, etcd, CoreDNS and pause images (hack/build-node-images.sh's archive);
#   - a static CNI config (ptp + host-local for 10.244.0.0/24, portmap): kind's kindnetd is not built here, so
#     the cluster config (config/kind/cluster.yaml) disables kind's default CNI; one node.
# Tag: $AIGW_IMAGE_PREFIX/kind-node:v$K8S_VERSION. Idempotent; low CPU/I/O priority. Prints the tag last.
#
# Environment: AIGW_CACHE_DIR, AIGW_IMAGE_PREFIX (aigw.local), K8S_VERSION (1.36.3), KIND_VERSION (0.33.0).
set -euo pipefail

LOG_TAG=kind-node
# shellcheck source=hack/lib/image-build.sh
source "$(dirname "$0")/lib/image-build.sh"
TAG="$PREFIX/kind-node:v$K8S_VERSION"

start=$(date +%s)
base="$(bash "$HACK/build-kind-base.sh" | tail -n 1)"
# Rebuilt when the base changed: the base's image ID is a label of the node image.
base_id="$(docker image inspect -f '{{.Id}}' "$base")"
if [[ "$(docker image inspect -f '{{index .Config.Labels "aigw.kind-base"}}' "$TAG" 2>/dev/null)" == "$base_id" ]]; then
  log "ready: $TAG"; echo "$TAG"; exit 0
fi
archive="$(bash "$HACK/build-node-images.sh" | tail -n 1)"
bin="$(bash "$HACK/build-kube-node.sh" | tail -n 1)"

name="aigw-kind-build-$$"
docker run -d --entrypoint=sleep --name "$name" --security-opt seccomp=unconfined "$base" infinity >/dev/null \
  || die "cannot start the build container from $base"
trap 'docker rm -f -v "$name" >/dev/null 2>&1 || true' EXIT
node_exec() { docker exec "$name" "$@"; }
for b in kubeadm kubelet kubectl; do
  docker cp "$bin/$b" "$name:/usr/bin/$b"
  node_exec chown root:root "/usr/bin/$b"
  node_exec chmod 0755 "/usr/bin/$b"
done
echo "v$K8S_VERSION" | docker exec -i "$name" sh -c 'cat > /kind/version'
docker exec -i "$name" sh -c 'mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-aigw-ptp.conflist' <<'CNI'
{
  "cniVersion": "1.0.0",
  "name": "aigw-ptp",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.244.0.0/24" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      },
      "mtu": 1500
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
CNI
# cgroup v1: systemd creates kubelet.slice only in the hierarchies it manages, and the kubelet wants it in all
# (e.g. "missing paths: /sys/fs/cgroup/hugetlb/kubelet.slice"); kind's own drop-in handles cgroup v2 only.
docker exec -i "$name" sh -c 'cat > /kind/bin/aigw-kubelet-cgroup-v1.sh && chmod 0755 /kind/bin/aigw-kubelet-cgroup-v1.sh' <<'SH'
#!/bin/sh
set -eu
[ ! -f /sys/fs/cgroup/cgroup.controllers ] || exit 0
# Best effort per hierarchy: some are read-only placeholders (e.g. "cpu,cpuacct" next to cpu and cpuacct); the
# kubelet names any that it needs and that are still missing.
for d in /sys/fs/cgroup/*/; do
  [ -L "${d%/}" ] || [ -d "${d}kubelet.slice" ] || mkdir -p "${d}kubelet.slice" 2>/dev/null || true
done
SH
printf '[Service]\nExecStartPre=/kind/bin/aigw-kubelet-cgroup-v1.sh\n' \
  | docker exec -i "$name" sh -c 'cat > /etc/systemd/system/kubelet.service.d/12-aigw-cgroup-v1.conf'
node_exec bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
for _ in $(seq 30); do node_exec ctr version >/dev/null 2>&1 && break; sleep 1; done
low docker exec -i "$name" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
  --all-platforms --no-unpack --digests - <"$archive" >/dev/null || die "importing $archive into the node failed"
node_exec pkill containerd || true
for _ in $(seq 30); do node_exec pgrep -x containerd >/dev/null 2>&1 || break; sleep 1; done
low docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change "LABEL aigw.kind-base=$base_id" "$name" "$TAG" >/dev/null \
  || die "docker commit failed"
log "ready in $(( $(date +%s) - start )) s: $TAG"
echo "$TAG"
