#!/usr/bin/env bash
# Starts or stops a private containerd whose root, state and socket live in DIR,
# with the shim at BIN_DIR on its PATH. The Rust test harness does the same in
# tests/support; this script serves the demo and manual experiments.
#   private-containerd.sh start DIR BIN_DIR
#   private-containerd.sh stop DIR
# CONTAINERD_VERSION=1.7 or 2.1 runs that release from build/containerd/
# (scripts/debian-extras.sh) instead of the host's own.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cmd="${1:?start|stop}"; dir="${2:?DIR}"

template=config-v2.toml.in
case "${CONTAINERD_VERSION:-}" in
"") ;;
1.7) PATH="$here/build/containerd/1.7/usr/bin:$PATH" ;;
2.1) PATH="$here/build/containerd/2.1/usr/bin:$PATH"; template=config-v3.toml.in ;;
*) echo "CONTAINERD_VERSION: 1.7 or 2.1 (or unset for the host's)" >&2; exit 2 ;;
esac

case "$cmd" in
start)
  bin_dir="${3:?BIN_DIR}"
  mkdir -p "$dir/cni"
  sed -e "s|@DIR@|$dir|g" -e "s|@SANDBOX_IMAGE@|docker.io/wasmhttp/pause:local|g" \
    "$here/tests/containerd/$template" > "$dir/config.toml"
  PATH="$bin_dir:$PATH" setsid containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  echo $! > "$dir/containerd.pid"
  for _ in $(seq 1 100); do
    ctr --address "$dir/containerd.sock" version >/dev/null 2>&1 && exit 0
    sleep 0.1
  done
  echo "containerd did not come up; its log:" >&2
  tail -n 30 "$dir/containerd.log" >&2
  exit 1
  ;;
stop)
  # Shims outlive containerd by design: stop those that belong to this one.
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "containerd-shim.*$dir/containerd.sock"; then
      kill -9 "${p#/proc/}" 2>/dev/null || true
    fi
  done
  if [ -f "$dir/containerd.pid" ]; then
    kill "$(cat "$dir/containerd.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$dir/containerd.pid")" 2>/dev/null || true
  fi
  # Snapshot and rootfs mounts die with their containers; sweep any left.
  { grep -o " $dir/[^ ]*" /proc/self/mountinfo || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$dir"
  ;;
*) echo "usage: $0 start DIR BIN_DIR | stop DIR" >&2; exit 2 ;;
esac
