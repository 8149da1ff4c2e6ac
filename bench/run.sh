#!/usr/bin/env bash
# `make bench`: builds what the benchmark runs (release, static, as shipped),
# installs its peers once (the wasmtime CLI of our locked wasmtime version,
# cached under ~/.cache/wasmhttp across clones), then runs bench/bench.py.
# Loopback only; every load is bounded in time. Extra arguments go to bench.py
# (e.g. --quick for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/static.sh bench
for example in hello-js hello-py service-py cgi-lua; do
  make --no-print-directory -C "examples/$example" BIN="$PWD/build/static"
done

version=$(awk '/^name = "wasmtime"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
tools="${XDG_CACHE_HOME:-$HOME/.cache}/wasmhttp/tools/wasmtime-$version"
if [ ! -x "$tools/bin/wasmtime" ]; then
  echo "bench: installing wasmtime-cli $version into $tools (once; about 20 minutes)"
  cargo install --locked --quiet wasmtime-cli --version "=$version" --root "$tools"
fi
"$tools/bin/wasmtime" --version

python3 bench/bench.py --out build/bench --wasmtime "$tools/bin/wasmtime" "$@"
