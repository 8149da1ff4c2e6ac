#!/usr/bin/env bash
# Builds the Kubernetes components the k8s suite runs, from source through the
# Go module proxy (go.mod here pins the release), static and version-stamped,
# into ~/.cache/wasmhttp/k8s/<version>/. A build is reused while go.mod, go.sum
# and this script are unchanged.
#   tests/k8s/build.sh        prints the directory holding the binaries
set -euo pipefail
cd "$(dirname "$0")"
version=$(sed -n 's/^[[:space:]]*\(require[[:space:]]*\)\{0,1\}k8s\.io\/kubernetes \(v[^[:space:]]*\).*/\2/p' go.mod)
[ -n "$version" ] || { echo "k8s build: go.mod pins no k8s.io/kubernetes" >&2; exit 1; }
out=${WASMHTTP_K8S_CACHE:-$HOME/.cache/wasmhttp/k8s}/$version
commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
stamp=$(cat go.mod go.sum build.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then echo "$out"; exit 0; fi

echo "k8s build: building Kubernetes $version (${commands[*]}) from source into $out;" \
  "about 9 minutes on 2 cores the first time (539 s measured), seconds afterwards" >&2
start=$(date +%s)
minor=${version#v1.}; minor=${minor%%.*}
# what hack/lib/version.sh stamps, so `kubectl version` and Helm's kubeVersion see the release
ldflags="-s -w"
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $package.gitVersion=$version -X $package.gitMajor=1 -X $package.gitMinor=$minor"
  ldflags+=" -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$out"
packages=()
for cmd in "${commands[@]}"; do packages+=("k8s.io/kubernetes/cmd/$cmd"); done
CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$out/" "${packages[@]}"
"$out/kubectl" version --client >&2
echo "$stamp" > "$out/.stamp"
echo "k8s build: done in $(( $(date +%s) - start )) s" >&2
echo "$out"
