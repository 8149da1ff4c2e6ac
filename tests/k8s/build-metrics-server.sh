#!/usr/bin/env bash
# Builds metrics-server (the release tests/k8s/metrics-server/go.mod pins)
# from source through the Go module proxy, static, into
# ~/.cache/wasmhttp/metrics-server/<version>/; reused while that go.mod,
# go.sum and this script are unchanged. About 2 minutes on 2 cores.
#   tests/k8s/build-metrics-server.sh   prints the path of the binary
set -euo pipefail
cd "$(dirname "$0")/metrics-server"
version=$(sed -n 's/^[[:space:]]*\(require[[:space:]]*\)\{0,1\}sigs\.k8s\.io\/metrics-server \(v[^[:space:]]*\).*/\2/p' go.mod)
[ -n "$version" ] || { echo "metrics-server build: go.mod pins no sigs.k8s.io/metrics-server" >&2; exit 1; }
out=$HOME/.cache/wasmhttp/metrics-server/$version
stamp=$(cat go.mod go.sum ../build-metrics-server.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$out/.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "metrics-server build: building metrics-server $version from source into $out (about 2 minutes)" >&2
  start=$(date +%s)
  mkdir -p "$out"
  CGO_ENABLED=0 go build -mod=readonly -trimpath \
    -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$version" \
    -o "$out/" sigs.k8s.io/metrics-server/cmd/metrics-server
  echo "$stamp" > "$out/.stamp"
  echo "metrics-server build: done in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/metrics-server"
