#!/usr/bin/env bash
# Builds the node binaries (the shim and the node installer) statically linked,
# so they run on any x86_64 Linux node whatever its shared libraries (k3s node
# images have almost none): glibc with crt-static and libseccomp's archive.
# Release profile, own target triple (so the flags never reach build scripts
# or proc macros), stripped copies in build/static/.
#   scripts/static.sh          the node binaries
#   scripts/static.sh bench    also the `wasmhttp` CLI and the bench contenders
#                              (native server, floor shim), for `make bench`
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
out=build/static
packages=(-p wasmhttp -p wasmhttp-node-installer)
bins=(containerd-shim-wasmhttp-v1 wasmhttp-node-installer)
if [ "${1:-}" = bench ]; then
  packages+=(-p wasmhttp-bench)
  packages+=(-p wasmhttp-fixtures)
  bins+=(wasmhttp wasmhttp-fixtures wasmhttp-bench-native containerd-shim-floor-v1)
fi
echo "static: building ${bins[*]} ($target, release, static)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# No debuginfo: the copies are stripped anyway, and it is most of what the
# linker reads and writes. A failed link prints a command line of tens of
# kilobytes before its cause; the summary after it says what went wrong and
# how much disk and memory there was.
if ! LIBSECCOMP_LINK_TYPE=static \
  LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
  RUSTFLAGS="-C target-feature=+crt-static" \
  CARGO_PROFILE_RELEASE_DEBUG=false \
  cargo build --locked --release --target "$target" "${packages[@]}" "${bins[@]/#/--bin=}" 2>&1 | tee "$log"; then
  echo "static: the build failed; its error lines, shortened:" >&2
  grep -E 'error|undefined|No space|collect2|ld:|signal|killed' "$log" | cut -c1-400 | tail -n 30 >&2 || true
  df -h "$PWD" /tmp >&2 || true
  free -m >&2 || true
  exit 1
fi
mkdir -p "$out"
for bin in "${bins[@]}"; do
  strip -o "$out/$bin" "target/$target/release/$bin"
done
ls -l "$out"
