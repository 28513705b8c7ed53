# Sourced by hack/setup-*.sh: `go install` one command from the Go module proxy into a version-keyed cache
# directory, once. Concurrent callers wait on one lock; a finished binary is reused without Go or network.
#
#   go_install_cached <tag> <out-dir> <module>@<version> <package> <ldflags> <expected version output> <version args...>
#
# Builds <package>@<version> into <out-dir>/bin (GOBIN), checks that `<binary> <version args...>` prints
# something starting with or containing <expected version output>, and only then moves it into place. With no
# version args (a server that has no version flag and would start serving), `go version -m <binary>` is checked
# instead: the build info must name <expected version output> (e.g. the module's path and version).
# Errors end with one "[<tag>] ERROR: ..." line naming the cause (no Go, too old a Go, unreachable proxy).

go_install_cached() {
  local tag="$1" out="$2" module_at="$3" pkg="$4" ldflags="$5" expect="$6"; shift 6
  local name="${pkg##*/}" version="${module_at##*@}" start lock minor got
  start=$(date +%s)
  mkdir -p "$out/bin" || { printf '[%s] ERROR: cannot create %s (set AIGW_CACHE_DIR)\n' "$tag" "$out" >&2; exit 1; }
  if [[ ! -x "$out/bin/$name" ]]; then
    lock="$(dirname "$out")/.build.lock"
    exec 8>"$lock"
    if ! flock -n 8; then
      printf '[%s] another build holds %s; waiting for it\n' "$tag" "$lock" >&2
      flock 8
    fi
  fi
  if [[ ! -x "$out/bin/$name" ]]; then
    # A non-interactive shell (CI) may lack the Go toolchain's usual directory on PATH.
    if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then export PATH="/usr/local/go/bin:$PATH"; fi
    command -v go >/dev/null 2>&1 \
      || { printf '[%s] ERROR: Go is not installed (or not on PATH): %s needs Go >= 1.26.\n' "$tag" "$module_at" >&2; exit 1; }
    minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
    [[ "$minor" =~ ^[0-9]+$ && "$minor" -ge 26 ]] \
      || { printf '[%s] ERROR: Go %s is too old: %s needs Go >= 1.26.\n' "$tag" "$(go env GOVERSION)" "$module_at" >&2; exit 1; }
    export CGO_ENABLED=0 GOTOOLCHAIN=local
    go list -m -json "$module_at" >/dev/null 2>"$out/proxy-check.log" \
      || { printf '[%s] ERROR: cannot fetch %s through the Go module proxy (%s): %s\n' "$tag" "$module_at" \
             "$(go env GOPROXY)" "$(tail -n 3 "$out/proxy-check.log")" >&2; exit 1; }
    printf '[%s] building %s@%s (cold: minutes on 2 cores)\n' "$tag" "$pkg" "$version" >&2
    rm -rf "$out/bin.tmp"
    GOBIN="$out/bin.tmp" go install -trimpath -ldflags "$ldflags" "$pkg@$version" \
      || { printf '[%s] ERROR: go install %s@%s failed\n' "$tag" "$pkg" "$version" >&2; exit 1; }
    if [[ $# -eq 0 ]]; then
      got=$(go version -m "$out/bin.tmp/$name" 2>&1) \
        || { printf '[%s] ERROR: the built %s is no Go binary: %s\n' "$tag" "$name" "$got" >&2; exit 1; }
    else
      got=$("$out/bin.tmp/$name" "$@" 2>&1) \
        || { printf '[%s] ERROR: the built %s does not run: %s\n' "$tag" "$name" "$got" >&2; exit 1; }
    fi
    [[ "$got" == *"$expect"* ]] \
      || { printf "[%s] ERROR: the built %s reports '%s', expected %s\n" "$tag" "$name" "$got" "$expect" >&2; exit 1; }
    mv "$out/bin.tmp/$name" "$out/bin/$name"
    rm -rf "$out/bin.tmp"
  fi
  printf '[%s] ready in %s s: %s\n' "$tag" "$(( $(date +%s) - start ))" "$out/bin/$name" >&2
  echo "$out/bin/$name"
}
