#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 300) and
# prints one line per target: runs, coverage, corpus size. `make test` runs it
# for 30 s per target; `make fuzz` for longer. A crash fails the run, and
# libFuzzer names the input that reproduces it (fuzz/artifacts/TARGET/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"

# cargo-fuzz needs a nightly toolchain (sanitizers, -Z flags); the machine's
# rustup has one. Pinned cargo-fuzz, installed once.
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version 2>/dev/null | grep -q '0.13.2'; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi

# Seeds from the real thing: the fixture components, bare and in tar layers.
seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
target/debug/wasmhttp-fixtures build "$seeds" hello echo core-module other-world command >/dev/null
mkdir -p fuzz/corpus/component_detection fuzz/corpus/image_layer
for wasm in "$seeds"/*.wasm; do
    name="$(basename "$wasm" .wasm)"
    cp "$wasm" "fuzz/corpus/component_detection/$name"
    # image_layer reads a media type index byte, then the layer
    { printf '\x00'; cat "$wasm"; } >"fuzz/corpus/image_layer/$name-raw"
    tar -C "$seeds" -cf "$seeds/$name.tar" "$name.wasm"
    { printf '\x02'; cat "$seeds/$name.tar"; } >"fuzz/corpus/image_layer/$name-tar"
    gzip -c "$seeds/$name.tar" >"$seeds/$name.tar.gz"
    { printf '\x04'; cat "$seeds/$name.tar.gz"; } >"fuzz/corpus/image_layer/$name-tgz"
done

cd fuzz
cargo +nightly fuzz build
for target in $(cargo +nightly fuzz list); do
    log="$(mktemp)"
    if ! cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: $target FAILED (reproducer in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    summary="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)"
    echo "fuzz: $target ok for ${seconds}s: ${summary#*DONE}"
    rm -f "$log"
done
