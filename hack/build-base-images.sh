#!/usr/bin/env bash
# The base images, built here without any image registry (none may be reachable): a Debian root filesystem from
# debootstrap (Debian's own mirror), `docker import`ed, then a Python image from Debian's python3 on top of it.
# Tags use our own prefix so they are never mistaken for the upstream images:
#   $AIGW_IMAGE_PREFIX/debian:$SUITE   (minbase + ca-certificates)
#   $AIGW_IMAGE_PREFIX/python:$SUITE   (+ python3, python3-venv): our Dockerfile's BASE_IMAGE build arg
# The root filesystem tarball is cached under $AIGW_CACHE_DIR/images, so a re-created docker store re-imports it
# without the mirror. Idempotent; runs at low CPU and I/O priority. Needs root, debootstrap and docker.
#
# Environment: AIGW_CACHE_DIR, AIGW_IMAGE_PREFIX (aigw.local), SUITE (trixie), DEBIAN_MIRROR (debootstrap's default),
#              HOST_CA_DIR (/usr/local/share/ca-certificates: the host's added CAs, copied into the base).
set -euo pipefail

LOG_TAG=base-images
# shellcheck source=hack/lib/image-build.sh
source "$(dirname "$0")/lib/image-build.sh"

SUITE="${SUITE:-trixie}"
MIRROR="${DEBIAN_MIRROR:-}"  # empty: debootstrap's default Debian mirror
HOST_CA_DIR="${HOST_CA_DIR:-/usr/local/share/ca-certificates}"
export PATH="$PATH:/usr/sbin:/sbin"

out="$CACHE_ROOT/images"
mkdir -p "$out"
exec 9>"$out/.base.lock"
flock 9

tarball="$out/debian-$SUITE-minbase.tar"
if ! has_image "$PREFIX/debian:$SUITE"; then
  if [[ ! -s "$tarball" ]]; then
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing: apt-get install debootstrap"
    [[ "$(id -u)" -eq 0 ]] || die "debootstrap needs root"
    start=$(date +%s)
    root="$(mktemp -d "$out/rootfs.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    log "debootstrap $SUITE (minbase) ${MIRROR:+from $MIRROR}"
    low debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root" ${MIRROR:+"$MIRROR"} >"$out/debootstrap.log" 2>&1 \
      || die "debootstrap failed: $(tail -n 3 "$out/debootstrap.log")"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    low tar -C "$root" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"; trap - EXIT
    log "root filesystem in $(( $(date +%s) - start )) s"
  fi
  low docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$PREFIX/debian:$SUITE" >/dev/null
  # The machine's locally added CAs (e.g. a TLS-intercepting egress proxy's), so apt and pip in image builds
  # trust what the host trusts. Public certificates only; none: nothing added.
  shopt -s nullglob
  cas=("$HOST_CA_DIR"/*.crt)
  shopt -u nullglob
  if [[ ${#cas[@]} -gt 0 ]]; then
    ctx="$(mktemp -d)"
    cp "${cas[@]}" "$ctx/"
    printf 'FROM %s\nCOPY *.crt /usr/local/share/ca-certificates/\nRUN update-ca-certificates >/dev/null\n' \
      "$PREFIX/debian:$SUITE" >"$ctx/Dockerfile"
    low docker build -q -t "$PREFIX/debian:$SUITE" "$ctx" >/dev/null || { rm -rf "$ctx"; die "adding the host's CAs failed"; }
    rm -rf "$ctx"
    log "added the host's CAs from $HOST_CA_DIR: ${cas[*]##*/}"
  fi
fi

if ! has_image "$PREFIX/python:$SUITE"; then
  start=$(date +%s)
  log "building $PREFIX/python:$SUITE (Debian's python3)"
  printf 'FROM %s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null && rm -rf /var/lib/apt/lists/*\n' \
    "$PREFIX/debian:$SUITE" | low docker build -q -t "$PREFIX/python:$SUITE" - >/dev/null || die "docker build $PREFIX/python:$SUITE failed"
  log "python image in $(( $(date +%s) - start )) s"
fi
log "ready: $PREFIX/debian:$SUITE $PREFIX/python:$SUITE"
