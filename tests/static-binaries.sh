#!/usr/bin/env bash
# The node binaries must run where nothing but the kernel is: no dynamic
# dependencies (ldd), and each prints its version inside an empty chroot.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' shim/Cargo.toml | head -n1)
empty=$(mktemp -d)
trap 'rm -rf "$empty"' EXIT
for bin in containerd-shim-wasmhttp-v1 wasmhttp-node-installer; do
  path=build/static/$bin
  [ -x "$path" ] || { echo "static: $path is missing (make static)" >&2; exit 1; }
  # ldd exits non-zero for a static binary and says so
  linkage=$(ldd "$path" 2>&1 || true)
  case "$linkage" in
    *"not a dynamic executable"*|*"statically linked"*) ;;
    *) echo "static: $bin is dynamically linked:" >&2; echo "$linkage" >&2; exit 1 ;;
  esac
  cp "$path" "$empty/$bin"
done
shim_says=$(chroot "$empty" /containerd-shim-wasmhttp-v1 -v)
installer_says=$(chroot "$empty" /wasmhttp-node-installer --version)
grep -q "Version: $version" <<<"$shim_says" || { echo "static: shim said: $shim_says" >&2; exit 1; }
grep -qx "wasmhttp-node-installer $version" <<<"$installer_says" || { echo "static: installer said: $installer_says" >&2; exit 1; }
echo "static: both binaries are static and print version $version in an empty chroot: ok"
