#!/usr/bin/env bash
# The images a kind node for Kubernetes v$K8S_VERSION preloads, built here without an image registry, at the names
# and tags `kubeadm config images list` (our kubeadm) and kind's containerd config ask for:
#   - kube-apiserver, kube-controller-manager, kube-scheduler (static binaries on aigw.local/debian), kube-proxy
#     (+ iptables, nftables, conntrack, ipset, kmod), from hack/build-kube-node.sh;
#   - etcd and CoreDNS built from the Go module proxy at kubeadm's versions (wrapper modules, like setup-envtest);
#   - pause: Kubernetes' own build/pause/linux/pause.c, compiled static here, at the tag kind's containerd config
#     names as its sandbox image.
# In docker's store every image is tagged $AIGW_IMAGE_PREFIX/<name>:<tag>. One docker archive,
# $AIGW_CACHE_DIR/kind/k8s-<version>/images.tar, carries them under the upstream names (registry.k8s.io/...), the
# only names kubeadm and the kubelet look up inside a node; the upstream tags exist in docker only for the save.
# Idempotent (built images and the archive are kept); low CPU/I/O priority. Prints the archive's path last.
#
# Environment: AIGW_CACHE_DIR, AIGW_IMAGE_PREFIX (aigw.local), K8S_VERSION (1.36.3), KIND_VERSION (0.33.0).
set -euo pipefail

LOG_TAG=node-images
# shellcheck source=hack/lib/image-build.sh
source "$(dirname "$0")/lib/image-build.sh"
OUT="$CACHE_ROOT/kind/k8s-$K8S_VERSION"
ARCHIVE="$OUT/images.tar"

if [[ -s "$ARCHIVE" ]]; then log "ready: $ARCHIVE"; echo "$ARCHIVE"; exit 0; fi
start=$(date +%s)
bin="$(bash "$HACK/build-kube-node.sh" | tail -n 1)"
bash "$HACK/build-base-images.sh" >/dev/null
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local
exec 9>"$OUT/.images.lock"
flock -n 9 || { log "waiting for $OUT/.images.lock"; flock 9; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT

# image <name> <tag> <Dockerfile text> <files to copy into the context...>: docker build once, as $PREFIX/<name>:<tag>.
image() {
  local name="$1" tag="$2" dockerfile="$3"; shift 3
  has_image "$PREFIX/$name:$tag" && return 0
  local t; t=$(date +%s)
  rm -rf "$ctx/b"; mkdir -p "$ctx/b"
  [[ $# -eq 0 ]] || cp "$@" "$ctx/b/"
  printf '%s\n' "$dockerfile" >"$ctx/b/Dockerfile"
  low docker build -q -t "$PREFIX/$name:$tag" "$ctx/b" >/dev/null || die "docker build $PREFIX/$name:$tag failed"
  log "$PREFIX/$name:$tag built in $(( $(date +%s) - t )) s"
}

v="v$K8S_VERSION"
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  image "$c" "$v" "FROM $PREFIX/debian:trixie
COPY $c /usr/local/bin/$c
ENTRYPOINT [\"/usr/local/bin/$c\"]" "$bin/$c"
done
image kube-proxy "$v" "FROM $PREFIX/debian:trixie
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables nftables conntrack ipset kmod >/dev/null && rm -rf /var/lib/apt/lists/*
COPY kube-proxy /usr/local/bin/kube-proxy
ENTRYPOINT [\"/usr/local/bin/kube-proxy\"]" "$bin/kube-proxy"

kind_dir=$(cd "$CACHE_ROOT" && go mod download -json "sigs.k8s.io/kind@v$KIND_VERSION" \
  | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])') || die "cannot fetch sigs.k8s.io/kind@v$KIND_VERSION"
pause_ref=$(sed -n 's/^ *sandbox_image = "\(.*\)"/\1/p' "$kind_dir/images/base/files/etc/containerd/config.toml")
[[ "$pause_ref" == registry.k8s.io/pause:* ]] || die "cannot find kind's sandbox image in its containerd config"
pause_tag="${pause_ref##*:}"
if ! has_image "$PREFIX/pause:$pause_tag"; then
  k8s_dir=$(cd "$CACHE_ROOT" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
    | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  command -v gcc >/dev/null 2>&1 || die "gcc is missing (pause is C): apt-get install gcc libc6-dev"
  gcc -Os -Wall -Werror -static -DVERSION="v$pause_tag-aigw" -o "$ctx/pause" "$k8s_dir/build/pause/linux/pause.c" \
    || die "compiling pause.c failed"
  image pause "$pause_tag" 'FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]' "$ctx/pause"
fi

# save <archive> <local image> <name in the archive>...: tag under the upstream names only for `docker save`.
save() {
  local archive="$1"; shift
  local refs=() local_ref upstream
  while [[ $# -gt 0 ]]; do
    local_ref="$1" upstream="$2"; shift 2
    ! has_image "$upstream" || die "docker already has $upstream: remove it (docker rmi $upstream); this script tags it only to save"
    docker tag "$local_ref" "$upstream"; refs+=("$upstream")
  done
  low docker save -o "$archive" "${refs[@]}" || die "docker save ${refs[*]} failed"
  docker rmi "${refs[@]}" >/dev/null
}
# Upstream references: the control plane, etcd and CoreDNS as our kubeadm lists them.
mapfile -t refs < <("$bin/kubeadm" config images list --kubernetes-version "$v")
ref_of() { printf '%s\n' "${refs[@]}" | grep -m1 "^registry.k8s.io/$1:" || die "kubeadm lists no $1 image"; }
etcd_ref="$(ref_of etcd)"; coredns_ref="$(ref_of coredns/coredns)"
etcd_version="${etcd_ref##*:}"; etcd_version="${etcd_version%-*}"
coredns_version="${coredns_ref##*:}"

# gomod_build <work dir> <module@version> <package> <output binary> <ldflags>: build in a wrapper module, so the
# module's own replace directives do not stop `go install`.
gomod_build() {
  local work="$1" module_at="$2" pkg="$3" out="$4" ld="$5" t
  [[ -x "$out" ]] && return 0
  t=$(date +%s)
  mkdir -p "$work" "$(dirname "$out")"
  (cd "$work" && { [[ -f go.mod ]] || { go mod init local/wrapper >/dev/null 2>&1 && go mod edit -go=1.26.0; }; } \
    && CGO_ENABLED=0 low go get -tool "$pkg@${module_at##*@}" \
    && CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-1}" low go build -p 1 -trimpath -ldflags "$ld" -o "$out.tmp" "$pkg") \
    || die "building $pkg@${module_at##*@} failed"
  mv "$out.tmp" "$out"
  log "${out##*/} built in $(( $(date +%s) - t )) s"
}
gomod_build "$CACHE_ROOT/build/etcd-$etcd_version" "go.etcd.io/etcd/server/v3@v$etcd_version" go.etcd.io/etcd/server/v3 \
  "$OUT/etcd-$etcd_version/etcd" "-s -w"
"$OUT/etcd-$etcd_version/etcd" --version | grep -q "etcd Version: $etcd_version" || die "the built etcd is not $etcd_version"
gomod_build "$CACHE_ROOT/build/coredns-$coredns_version" "github.com/coredns/coredns@$coredns_version" github.com/coredns/coredns \
  "$OUT/coredns-$coredns_version/coredns" "-s -w"
"$OUT/coredns-$coredns_version/coredns" -version | grep -q "CoreDNS-${coredns_version#v}" || die "the built coredns is not $coredns_version"
image etcd "${etcd_ref##*:}" "FROM $PREFIX/debian:trixie
COPY etcd /usr/local/bin/etcd
ENTRYPOINT [\"/usr/local/bin/etcd\"]" "$OUT/etcd-$etcd_version/etcd"
image coredns "$coredns_version" "FROM scratch
COPY coredns /coredns
USER 65532:65532
EXPOSE 53 53/udp
ENTRYPOINT [\"/coredns\"]" "$OUT/coredns-$coredns_version/coredns"

save "$ARCHIVE.tmp" \
  "$PREFIX/kube-apiserver:$v" "$(ref_of kube-apiserver)" \
  "$PREFIX/kube-controller-manager:$v" "$(ref_of kube-controller-manager)" \
  "$PREFIX/kube-scheduler:$v" "$(ref_of kube-scheduler)" \
  "$PREFIX/kube-proxy:$v" "$(ref_of kube-proxy)" \
  "$PREFIX/etcd:${etcd_ref##*:}" "$etcd_ref" \
  "$PREFIX/coredns:$coredns_version" "$coredns_ref" \
  "$PREFIX/pause:$pause_tag" "$pause_ref"
mv "$ARCHIVE.tmp" "$ARCHIVE"
log "ready in $(( $(date +%s) - start )) s: $ARCHIVE"
echo "$ARCHIVE"
