# Sourced by the hack/build-*.sh scripts that build images (each sets LOG_TAG first). It gives them one place for
# what they share:
#   - the settings, from the environment or their defaults: PREFIX (AIGW_IMAGE_PREFIX, aigw.local: our own
#     prefix, never mistaken for an upstream image), CACHE_ROOT (AIGW_CACHE_DIR), HACK (this hack/ directory),
#     REPO, KIND_VERSION (0.33.0), K8S_VERSION (1.36.3), EG_VERSION (1.9.0);
#   - log and die under "[$LOG_TAG]", `low` (the lowest CPU and I/O priority: the machine is shared), has_image;
#   - a docker daemon that answers (else it stops, naming `sudo make docker-engine`).

PREFIX="${AIGW_IMAGE_PREFIX:-aigw.local}"
CACHE_ROOT="${AIGW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-gateway-py}"
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$HACK/.." && pwd)"
KIND_VERSION="${KIND_VERSION:-0.33.0}"
K8S_VERSION="${K8S_VERSION:-1.36.3}"
EG_VERSION="${EG_VERSION:-1.9.0}"

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$LOG_TAG" "$*" >&2; exit 1; }
low() { nice -n 19 ionice -c3 "$@"; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }

docker info >/dev/null 2>&1 || die "docker does not answer: sudo make docker-engine"
