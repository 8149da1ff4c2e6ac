#!/usr/bin/env bash
# Builds one of the cluster's add-ons from source through the Go module proxy:
# tests/k8s/NAME/go.mod pins its release and names the command as its one
# `tool`. Static, into ~/.cache/wasmhttp/NAME/<version>/, reused while that
# go.mod, go.sum and this script are unchanged (metrics-server: about 2
# minutes on 2 cores the first time).
#   tests/k8s/build-addon.sh metrics-server|coredns   prints the binary's path
set -euo pipefail
name=${1:?usage: build-addon.sh metrics-server|coredns}
cd "$(dirname "$0")/$name"
package=$(sed -n 's/^tool \([^[:space:]]*\)$/\1/p' go.mod)
[ -n "$package" ] || { echo "$name build: tests/k8s/$name/go.mod names no tool" >&2; exit 1; }
version=$(go list -mod=readonly -f '{{.Module.Version}}' "$package")
out=$HOME/.cache/wasmhttp/$name/$version
stamp=$(cat go.mod go.sum ../build-addon.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "$name build: building $package $version from source into $out" >&2
  start=$(date +%s)
  mkdir -p "$out"
  CGO_ENABLED=0 go build -mod=readonly -trimpath \
    -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$version" -o "$out/$name" "$package"
  echo "$stamp" > "$out/.stamp"
  echo "$name build: done in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/$name"
