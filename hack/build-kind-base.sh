#!/usr/bin/env bash
# kind's node base image, built here without an image registry: kind's own images/base/Dockerfile (from the
# sigs.k8s.io/kind module) rewritten for this machine:
#   - FROM aigw.local/debian:trixie (hack/build-base-images.sh) instead of debian:trixie-slim;
#   - its `git clone`s of containerd, runc, crictl, the CNI plugins and the fuse-overlayfs snapshotter replaced by
#     `go install` from the Go module proxy at the versions its ARGs name (built on the host, cached by version);
#   - hack/runc-shim installed as /usr/local/sbin/runc with the real runc as runc.real: kube-proxy and kindnetd
#     run privileged, and this VM's bounding set lacks CAP_SYS_RESOURCE;
#   - single-stage steps the legacy docker builder understands (no COPY --chmod), squashed like kind's.
# Tag: $AIGW_IMAGE_PREFIX/kind-base:v<kind version>. Idempotent; every build at the lowest CPU/I/O priority, one
# at a time (GOMAXPROCS=1 unless set). Needs docker, Go >= 1.26, libseccomp-dev (runc; installed when root).
#
# Environment: AIGW_CACHE_DIR, AIGW_IMAGE_PREFIX (aigw.local), KIND_VERSION (0.33.0).
set -euo pipefail

LOG_TAG=kind-base
# shellcheck source=hack/lib/image-build.sh
source "$(dirname "$0")/lib/image-build.sh"
TAG="$PREFIX/kind-base:v$KIND_VERSION"

# The image is rebuilt when the shim changed: its cache key (the source hash) is a label of the image.
shim="$(bash "$HACK/build-runc-shim.sh" | tail -n 1)"
shim_key="$(basename "$(dirname "$shim")")"
if [[ "$(docker image inspect -f '{{index .Config.Labels "aigw.runc-shim"}}' "$TAG" 2>/dev/null)" == "$shim_key" ]]; then
  log "ready: $TAG"; echo "$TAG"; exit 0
fi
start=$(date +%s)
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local GOMAXPROCS="${GOMAXPROCS:-1}" GOFLAGS="${GOFLAGS:-} -mod=mod"
out="$CACHE_ROOT/kind/base-$KIND_VERSION"
mkdir -p "$out/bin"
exec 9>"$out/.build.lock"
flock -n 9 || { log "waiting for $out/.build.lock"; flock 9; }

kind_dir=$(cd "$CACHE_ROOT" && go mod download -json "sigs.k8s.io/kind@v$KIND_VERSION" \
  | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])') || die "cannot fetch sigs.k8s.io/kind@v$KIND_VERSION"
base="$kind_dir/images/base"
arg() { sed -n "s/^ARG $1=\"\\(.*\\)\"/\\1/p" "$base/Dockerfile" | head -n 1; }
CONTAINERD_VERSION=$(arg CONTAINERD_VERSION); RUNC_VERSION=$(arg RUNC_VERSION); CRICTL_VERSION=$(arg CRICTL_VERSION)
CNI_PLUGINS_VERSION=$(arg CNI_PLUGINS_VERSION); FUSE_VERSION=$(arg CONTAINERD_FUSE_OVERLAYFS_VERSION)
BUILDTAGS=$(arg BUILDTAGS)
for v in CONTAINERD_VERSION RUNC_VERSION CRICTL_VERSION CNI_PLUGINS_VERSION FUSE_VERSION; do
  [[ -n "${!v}" ]] || die "no $v ARG in $base/Dockerfile: kind's layout changed"
done
log "kind v$KIND_VERSION base: containerd $CONTAINERD_VERSION, runc $RUNC_VERSION, crictl $CRICTL_VERSION, CNI plugins $CNI_PLUGINS_VERSION, fuse-overlayfs-snapshotter $FUSE_VERSION"

# gobuild <binary name> <package@version> <CGO_ENABLED> <tags> <ldflags>: `go install` into $out/bin, once.
gobuild() {
  local name="$1" pkg="$2" cgo="$3" tags="$4" ld="$5" t
  [[ -x "$out/bin/$name" ]] && return 0
  t=$(date +%s)
  log "go install $pkg"
  rm -rf "$out/gobin.tmp"
  CGO_ENABLED="$cgo" GOBIN="$out/gobin.tmp" low go install -p 1 -trimpath -tags "$tags" -ldflags "$ld" "$pkg" \
    || die "go install $pkg failed"
  mv "$out/gobin.tmp/$(basename "${pkg%@*}")" "$out/bin/$name"
  rm -rf "$out/gobin.tmp"
  log "$name built in $(( $(date +%s) - t )) s"
}

cm=github.com/containerd/containerd/v2
cld="-s -w -X $cm/version.Version=$CONTAINERD_VERSION -X $cm/version.Package=$cm"
gobuild containerd "$cm/cmd/containerd@$CONTAINERD_VERSION" 0 "$BUILDTAGS" "$cld"
gobuild ctr "$cm/cmd/ctr@$CONTAINERD_VERSION" 0 "$BUILDTAGS" "$cld"
gobuild containerd-shim-runc-v2 "$cm/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" 0 "$BUILDTAGS" "$cld"
if [[ ! -x "$out/bin/runc" ]]; then
  if [[ ! -e /usr/include/seccomp.h ]]; then
    [[ "$(id -u)" -eq 0 ]] || die "runc needs libseccomp-dev: sudo apt-get install libseccomp-dev"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp-dev >/dev/null || die "apt-get install libseccomp-dev failed"
  fi
  gobuild runc "github.com/opencontainers/runc@$RUNC_VERSION" 1 seccomp "-s -w -X main.version=${RUNC_VERSION#v}"
fi
gobuild crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" 0 "" \
  "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
for p in ipam/host-local main/loopback main/ptp meta/portmap; do
  gobuild "${p##*/}" "github.com/containernetworking/plugins/plugins/$p@$CNI_PLUGINS_VERSION" 0 "" \
    "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION"
done
gobuild containerd-fuse-overlayfs-grpc \
  "github.com/containerd/fuse-overlayfs-snapshotter/v2/cmd/containerd-fuse-overlayfs-grpc@$FUSE_VERSION" 0 "" "-s -w"
bash "$HACK/build-base-images.sh" >/dev/null
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp -r "$base/files" "$ctx/files"
chmod -R u+w "$ctx/files"
mkdir -p "$ctx/bin"
cp "$out"/bin/* "$ctx/bin/"
cp "$shim" "$ctx/bin/runc-shim"
cat >"$ctx/Dockerfile" <<DOCKERFILE
# Generated by hack/build-kind-base.sh from sigs.k8s.io/kind@v$KIND_VERSION images/base/Dockerfile.
FROM $PREFIX/debian:trixie AS build
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/LICENSES/ /LICENSES/
COPY files/etc/ /etc/
RUN chmod 0755 /usr/local/bin/* /kind /kind/bin /kind/bin/* \\
    && find /kind /LICENSES /etc/containerd /etc/default /etc/sysctl.d /etc/systemd/system /etc/crictl.yaml -type f ! -path '/kind/bin/*' -exec chmod 0644 {} + \\
    && DEBIAN_FRONTEND=noninteractive clean-install \\
      systemd \\
      conntrack iptables nftables iproute2 ethtool util-linux mount kmod \\
      libseccomp2 pigz fuse-overlayfs \\
      nfs-common open-iscsi \\
      e2fsprogs \\
      bash ca-certificates curl jq procps \\
    && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \\
    && rm -f /lib/systemd/system/multi-user.target.wants/* \\
    && rm -f /etc/systemd/system/*.wants/* \\
    && rm -f /lib/systemd/system/local-fs.target.wants/* \\
    && rm -f /lib/systemd/system/sockets.target.wants/*udev* \\
    && rm -f /lib/systemd/system/sockets.target.wants/*initctl* \\
    && rm -f /lib/systemd/system/basic.target.wants/* \\
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
    && ln -sf /usr/lib/systemd/systemd /sbin/init
RUN systemctl enable kubelet.service \\
    && systemctl enable containerd.service \\
    && systemctl enable undo-mount-hacks.service \\
    && systemctl mask systemd-binfmt.service \\
    && mkdir -p /etc/kubernetes/manifests /opt/cni/bin
COPY bin/containerd bin/ctr bin/containerd-shim-runc-v2 bin/crictl bin/containerd-fuse-overlayfs-grpc /usr/local/bin/
COPY bin/runc /usr/local/sbin/runc.real
COPY bin/runc-shim /usr/local/sbin/runc
COPY bin/host-local bin/loopback bin/ptp bin/portmap /opt/cni/bin/
RUN ctr oci spec \\
        | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
        | jq 'del(.process.rlimits)' \\
        > /etc/containerd/cri-base.json \\
    && containerd --version && runc --version && crictl --version

FROM scratch
COPY --from=build / /
LABEL aigw.runc-shim=$shim_key
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
DOCKERFILE
t=$(date +%s)
low docker build -t "$TAG" "$ctx" >"$out/docker-build.log" 2>&1 || die "docker build failed: $(tail -n 5 "$out/docker-build.log")"
log "image built in $(( $(date +%s) - t )) s; ready in $(( $(date +%s) - start )) s: $TAG"
echo "$TAG"
