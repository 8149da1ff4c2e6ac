#!/usr/bin/env bash
# The demo: a private containerd starts an example as a container through
# containerd-shim-wasmhttp-v1, we fetch it over HTTP on loopback, and
# everything is torn down again.
#   scripts/demo.sh            the JavaScript example (hello-js)
#   scripts/demo.sh cgi-c      the C CGI example, with WASMHTTP_MODE=cgi and a
#                              directory mounted at /config as its configMap
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
example="${1:-hello-js}"
dir="$(mktemp -d /tmp/wasmhttp-demo.XXXXXX)"
ctr=(ctr --address "$dir/containerd.sock" --namespace wasmhttp-demo)

case "$example" in
hello-js)
  note="the first start compiles the 13 MB component in the shim; later starts use the cache"
  run_flags=()
  path=/demo
  ;;
cgi-c)
  note="a C program (a WASI preview 1 module), run once per request as CGI"
  mkdir -p "$dir/config"
  echo "Served by a C program compiled to WebAssembly." > "$dir/config/motd.txt"
  run_flags=(--env WASMHTTP_MODE=cgi --mount "type=bind,src=$dir/config,dst=/config,options=rbind:ro")
  path=/
  ;;
*)
  echo "demo: no demo for $example (hello-js or cgi-c)" >&2
  exit 2
  ;;
esac

# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
  "${ctr[@]}" tasks kill --signal SIGKILL "$example" >/dev/null 2>&1 || true
  "${ctr[@]}" tasks delete --force "$example" >/dev/null 2>&1 || true
  "${ctr[@]}" containers delete "$example" >/dev/null 2>&1 || true
  "$root/scripts/private-containerd.sh" stop "$dir"
}
trap cleanup EXIT

mkdir -p "$dir/bin"
ln -s "$root/target/debug/containerd-shim-wasmhttp-v1" "$dir/bin/containerd-shim-wasmhttp-v1"
echo "demo: starting a private containerd in $dir"
"$root/scripts/private-containerd.sh" start "$dir" "$dir/bin"

echo "demo: importing examples/$example/build/$example.tar"
"${ctr[@]}" images import "$root/examples/$example/build/$example.tar" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin=$(free_port)
echo "demo: ctr run --net-host --runtime io.containerd.wasmhttp.v1 $example (listening on 127.0.0.1:$port)"
echo "demo: $note"
started=$(date +%s.%N)
"${ctr[@]}" run -d --net-host --runtime io.containerd.wasmhttp.v1 \
  --env "WASMHTTP_LISTEN=127.0.0.1:$port" --env "WASMHTTP_ADMIN_LISTEN=127.0.0.1:$admin" \
  "${run_flags[@]}" "docker.io/library/$example:latest" "$example" >/dev/null

for _ in $(seq 1 240); do
  if answer="$(curl -sf "http://127.0.0.1:$port$path")"; then
    echo "demo: answered $(python3 -c "import time; print(f'{time.time() - $started:.1f}')") s after ctr run:"
    echo
    while IFS= read -r line; do echo "    $line"; done <<<"$answer"
    echo
    if [ "$example" = cgi-c ]; then
      echo "demo: POST / with the form field name=Ada:"
      curl -sf --data 'name=Ada' "http://127.0.0.1:$port/" | sed 's/^/    /'
      echo
    fi
    echo "demo: its admin endpoint, /readyz: $(curl -s "http://127.0.0.1:$admin/readyz")"
    echo "demo: requests served so far, from /metrics:"
    curl -s "http://127.0.0.1:$admin/metrics" | grep '^wasmhttp_requests_total' | sed 's/^/    /'
    echo
    echo "demo: stopping the container (SIGTERM)"
    "${ctr[@]}" tasks kill --signal SIGTERM "$example" >/dev/null
    exit 0
  fi
  sleep 0.5
done
echo "demo: the container did not answer within 2 minutes; containerd's log:" >&2
tail -n 30 "$dir/containerd.log" >&2
exit 1
