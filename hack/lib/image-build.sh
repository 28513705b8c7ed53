# Sourced by the hack/build-*.sh scripts that build images: log and die under "[$LOG_TAG]", `low` (the lowest
# CPU and I/O priority: the machine is shared), has_image, and a docker daemon that answers.

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$LOG_TAG" "$*" >&2; exit 1; }
low() { nice -n 19 ionice -c3 "$@"; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }

docker info >/dev/null 2>&1 || die "docker does not answer: sudo make docker-engine"
