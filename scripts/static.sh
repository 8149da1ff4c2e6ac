#!/usr/bin/env bash
# Builds the node binaries (the shim and the node installer) statically linked,
# so they run on any x86_64 Linux node whatever its shared libraries (k3s node
# images have almost none): glibc with crt-static and libseccomp's archive.
# Release profile, own target triple (so the flags never reach build scripts
# or proc macros), stripped copies in build/static/.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
out=build/static
echo "static: building containerd-shim-wasmhttp-v1 and wasmhttp-node-installer ($target, release, static)"
LIBSECCOMP_LINK_TYPE=static \
LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --locked --release --target "$target" \
    -p wasmhttp -p wasmhttp-node-installer \
    --bin containerd-shim-wasmhttp-v1 --bin wasmhttp-node-installer
mkdir -p "$out"
for bin in containerd-shim-wasmhttp-v1 wasmhttp-node-installer; do
  strip -o "$out/$bin" "target/$target/release/$bin"
done
ls -l "$out"
