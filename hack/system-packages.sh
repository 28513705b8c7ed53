#!/usr/bin/env bash
# Make sure the system programs the tests and benchmarks run are installed: dnsmasq (the integration and e2e
# tiers' real DNS server, Debian package dnsmasq-base), redis-server (the store of the real rate limit service in
# the e2e token-budget scenario, package redis-server) and wrk (the benchmarks' load generator, package wrk).
# Called by `make setup`, so the README's set-up command is all the set-up there is.
#
# - Everything present: silent, exit 0.
# - Something missing, running as root with apt-get: `apt-get update`, then `apt-get install` of exactly the
#   missing packages.
# - Otherwise: prints the one command that installs them and exits 1 (nothing is half-installed).
#
# Environment: AIGW_SKIP_SYSTEM_PACKAGES=1 skips the check (e.g. a machine where a different tool provides them);
#              AIGW_SBIN_PATH (default /usr/sbin:/sbin) is searched besides PATH, since a non-root PATH may lack it.
set -euo pipefail

log() { printf '[system-packages] %s\n' "$*" >&2; }

if [[ "${AIGW_SKIP_SYSTEM_PACKAGES:-}" == 1 ]]; then exit 0; fi

# program -> Debian package.
declare -A PACKAGE_OF=([dnsmasq]=dnsmasq-base [redis-server]=redis-server [wrk]=wrk)
missing=()
for program in dnsmasq redis-server wrk; do
  if ! PATH="$PATH:${AIGW_SBIN_PATH-/usr/sbin:/sbin}" command -v "$program" >/dev/null 2>&1; then
    missing+=("${PACKAGE_OF[$program]}")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then exit 0; fi

if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi

log "missing system packages: ${missing[*]}. Install them, then re-run make:"
if command -v apt-get >/dev/null 2>&1; then
  printf '  sudo apt-get update && sudo apt-get install -y %s\n' "${missing[*]}" >&2
else
  printf '  install the programs dnsmasq, redis-server and wrk with your system package manager (Debian: %s)\n' "${missing[*]}" >&2
fi
exit 1
