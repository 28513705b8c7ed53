# Sourced by hack/ scripts that build Kubernetes commands from the k8s.io/kubernetes module: the -ldflags that
# stamp the version the way the release build does (`--version` prints "Kubernetes v<version>").
#
#   kube_ldflags <version, e.g. 1.36.3>

kube_ldflags() {
  local version="$1" minor ld="-s -w" p
  minor=$(echo "$version" | cut -d. -f2)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  echo "$ld"
}
