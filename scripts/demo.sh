#!/usr/bin/env bash
# The demo: a private containerd starts the JavaScript example as a container
# through containerd-shim-wasmhttp-v1, we fetch it over HTTP on loopback, and
# everything is torn down again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(mktemp -d /tmp/wasmhttp-demo.XXXXXX)"
ctr=(ctr --address "$dir/containerd.sock" --namespace wasmhttp-demo)

# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
  "${ctr[@]}" tasks kill --signal SIGKILL hello-js >/dev/null 2>&1 || true
  "${ctr[@]}" tasks delete --force hello-js >/dev/null 2>&1 || true
  "${ctr[@]}" containers delete hello-js >/dev/null 2>&1 || true
  "$root/scripts/private-containerd.sh" stop "$dir"
}
trap cleanup EXIT

mkdir -p "$dir/bin"
ln -s "$root/target/debug/containerd-shim-wasmhttp-v1" "$dir/bin/containerd-shim-wasmhttp-v1"
echo "demo: starting a private containerd in $dir"
"$root/scripts/private-containerd.sh" start "$dir" "$dir/bin"

echo "demo: importing examples/hello-js/build/hello-js.tar"
"${ctr[@]}" images import "$root/examples/hello-js/build/hello-js.tar" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin=$(free_port)
echo "demo: ctr run --net-host --runtime io.containerd.wasmhttp.v1 hello-js (listening on 127.0.0.1:$port)"
echo "demo: the first start compiles the 13 MB component in the shim; later starts use the cache"
started=$(date +%s.%N)
"${ctr[@]}" run -d --net-host --runtime io.containerd.wasmhttp.v1 \
  --env "WASMHTTP_LISTEN=127.0.0.1:$port" --env "WASMHTTP_ADMIN_LISTEN=127.0.0.1:$admin" \
  docker.io/library/hello-js:latest hello-js >/dev/null

for _ in $(seq 1 240); do
  if answer="$(curl -sf "http://127.0.0.1:$port/demo")"; then
    echo "demo: answered $(python3 -c "import time; print(f'{time.time() - $started:.1f}')") s after ctr run:"
    echo
    echo "    $answer"
    echo
    echo "demo: its admin endpoint, /readyz: $(curl -s "http://127.0.0.1:$admin/readyz")"
    echo "demo: requests served so far, from /metrics:"
    curl -s "http://127.0.0.1:$admin/metrics" | grep '^wasmhttp_requests_total' | sed 's/^/    /'
    echo
    echo "demo: stopping the container (SIGTERM)"
    "${ctr[@]}" tasks kill --signal SIGTERM hello-js >/dev/null
    exit 0
  fi
  sleep 0.5
done
echo "demo: the container did not answer within 2 minutes; containerd's log:" >&2
tail -n 30 "$dir/containerd.log" >&2
exit 1
