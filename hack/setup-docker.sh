#!/usr/bin/env bash
# Opt-in (`make docker-engine`, or AIGW_INSTALL_DOCKER=1 for the kind targets): a working Docker engine on this
# machine, for kind. Changes the machine, as root:
#   - installs Debian's docker.io (dockerd, containerd, runc) when dockerd is missing;
#   - builds hack/runc-shim and installs it as /usr/local/libexec/ai-gateway-py/runc-shim;
#   - registers it in /etc/docker/daemon.json as the runtime "aigw-runc" and makes it the default runtime
#     (other keys of an existing daemon.json are kept);
#   - starts dockerd (systemctl when systemd runs, else in the background, log /var/log/aigw-dockerd.log) when
#     it is not running, or restarts it when daemon.json changed.
# Why the shim: on VMs whose capability bounding set lacks CAP_SYS_RESOURCE, `docker run --privileged` (every
# kind node) fails with "unable to apply caps: operation not permitted"; the shim drops that one capability
# and execs runc. On a machine with the full bounding set it changes nothing a container sees.
# Idempotent. Ends with `docker run --privileged` as the proof; exits non-zero with the cause otherwise.
#
# Environment: AIGW_CACHE_DIR (cache root; the shim binary is cached there by its source hash).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
SHIM_DEST=/usr/local/libexec/ai-gateway-py/runc-shim
DAEMON_JSON=/etc/docker/daemon.json
start=$(date +%s)

log() { printf '[setup-docker] %s\n' "$*" >&2; }
die() { printf '[setup-docker] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" -eq 0 ]] || die "needs root (it installs packages and configures dockerd): sudo make docker-engine"
export PATH="$PATH:/usr/sbin:/sbin:/usr/local/go/bin"

if ! command -v dockerd >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "dockerd is missing and there is no apt-get: install Docker, then re-run"
  log "installing docker.io (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; } \
    || die "apt-get install docker.io failed"
fi

shim_bin="$(bash "$REPO/hack/build-runc-shim.sh" | tail -n 1)"
if ! cmp -s "$shim_bin" "$SHIM_DEST"; then
  install -D -m 0755 "$shim_bin" "$SHIM_DEST"
fi

mkdir -p "$(dirname "$DAEMON_JSON")"
old="$(cat "$DAEMON_JSON" 2>/dev/null || true)"
python3 - "$DAEMON_JSON" "$SHIM_DEST" <<'PY'
import json, pathlib, sys
path, shim = pathlib.Path(sys.argv[1]), sys.argv[2]
conf = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
conf.setdefault("runtimes", {})["aigw-runc"] = {"path": shim}
conf["default-runtime"] = "aigw-runc"
path.write_text(json.dumps(conf, indent=2, sort_keys=True) + "\n")
PY
changed=0
[[ "$old" == "$(cat "$DAEMON_JSON")" ]] || changed=1

running=0
docker info >/dev/null 2>&1 && running=1
if [[ -d /run/systemd/system ]]; then
  if [[ $running -eq 0 || $changed -eq 1 ]]; then
    log "(re)starting docker (systemctl)"
    systemctl restart docker || die "systemctl restart docker failed: journalctl -u docker"
  fi
else
  if [[ $running -eq 1 && $changed -eq 1 ]]; then
    log "daemon.json changed: stopping dockerd to restart it"
    kill "$(cat /var/run/docker.pid)" 2>/dev/null || true
    for _ in $(seq 60); do docker info >/dev/null 2>&1 || break; sleep 1; done
    running=0
  fi
  if [[ $running -eq 0 ]]; then
    log "starting dockerd (log /var/log/aigw-dockerd.log)"
    nohup dockerd >>/var/log/aigw-dockerd.log 2>&1 </dev/null &
  fi
fi
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
docker info >/dev/null 2>&1 || die "dockerd does not answer: see /var/log/aigw-dockerd.log"
[[ "$(docker info --format '{{.DefaultRuntime}}')" == aigw-runc ]] || die "dockerd's default runtime is not aigw-runc"
log "ready in $(( $(date +%s) - start )) s: dockerd with default runtime aigw-runc ($SHIM_DEST)"
