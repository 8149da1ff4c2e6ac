#!/usr/bin/env bash
# The patched crates (two of runwasi's, wasmtime-wasi-http): each is the crate exactly as crates.io serves it
# (pinned by SHA-256) plus third_party/<name>.patch, laid out in
# build/third_party/<name>, where the workspace's [patch.crates-io] finds it.
#   scripts/third-party.sh          lay the trees out (only what changed: an
#                                   untouched tree keeps its mtimes, so cargo
#                                   does not rebuild it)
#   scripts/third-party.sh check    fail if a tree is not registry + patch
#                                   (an edit not yet saved into the patch)
#   scripts/third-party.sh save     write each tree's difference from the
#                                   registry's crate into its patch file
set -euo pipefail
cd "$(dirname "$0")/.."

# name version sha256-of-the-.crate
crates=(
  "containerd-shimkit 0.1.2 1f548b19bee283fec7d8763d904e52278da1982b760d8a83e5d282045dd25111"
  "containerd-shim-wasm 1.0.1 38357d0c7fdb42eea29ad99f1da2488c2a93ad3ca5d0e684121b34ca815c75c0"
  "wasmtime-wasi-http 48.0.8 1ce402d792df4c6440de3a48b6fb34ebb06309584bd9777832d14ad7a486f762"
)
mode=${1:-layout}
case "$mode" in layout | check | save) ;; *) echo "usage: $0 [check|save]" >&2; exit 2 ;; esac

downloads=${WASMHTTP_CRATE_CACHE:-$HOME/.cache/wasmhttp/crates}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The registry's crate, unpacked into $work/pristine/<name>.
pristine() {
  local name=$1 version=$2 sha256=$3 file
  file="$downloads/$name-$version.crate"
  if [ ! -f "$file" ] || ! echo "$sha256  $file" | sha256sum -c --quiet - 2>/dev/null; then
    mkdir -p "$downloads"
    local cached
    cached=$(find "$HOME/.cargo/registry/cache" -name "$name-$version.crate" 2>/dev/null | head -n1 || true)
    if [ -n "$cached" ]; then
      cp "$cached" "$file.part"
    else
      echo "third-party: downloading $name $version from crates.io"
      curl -sSfL --retry 3 --max-time 120 -o "$file.part" \
        "https://static.crates.io/crates/$name/$name-$version.crate"
    fi
    if ! echo "$sha256  $file.part" | sha256sum -c --quiet -; then
      echo "third-party: $name-$version.crate is not the pinned one (SHA-256 $sha256)" >&2
      exit 1
    fi
    mv "$file.part" "$file"
  fi
  mkdir -p "$work/pristine"
  rm -rf "$work/pristine/$name"
  tar -xzf "$file" -C "$work/pristine"
  mv "$work/pristine/$name-$version" "$work/pristine/$name"
}

status=0
for entry in "${crates[@]}"; do
  read -r name version sha256 <<< "$entry"
  pristine "$name" "$version" "$sha256"
  tree=build/third_party/$name
  patch_file=third_party/$name.patch
  if [ "$mode" = save ]; then
    rm -rf "$work/a" "$work/b"
    cp -a "$work/pristine/$name" "$work/a"
    cp -a "$tree" "$work/b"
    # diff exits 1 when the trees differ: that is the patch; dates dropped
    # from its headers so that saving twice writes the same file
    { (cd "$work" && diff -ruN a b) || [ $? = 1 ]; } |
      sed -E -e '/^diff -ruN /d' -e 's/^(---|\+\+\+) ([^\t]*)\t.*/\1 \2/' > "$patch_file"
    echo "third-party: $patch_file written ($(grep -c '^@@' "$patch_file") hunks)"
    rm -rf "$work/pristine/$name"
    continue
  fi
  mkdir -p "$work/patched"
  rm -rf "$work/patched/$name"
  cp -a "$work/pristine/$name" "$work/patched/$name"
  if ! patch -s -p1 -d "$work/patched/$name" --no-backup-if-mismatch < "$patch_file"; then
    echo "third-party: $patch_file does not apply to $name $version from crates.io" >&2
    exit 1
  fi
  if diff -rq "$work/patched/$name" "$tree" >/dev/null 2>&1; then
    continue
  fi
  if [ "$mode" = check ]; then
    echo "third-party: $tree is not $name $version from crates.io + $patch_file:" >&2
    diff -ru "$work/patched/$name" "$tree" | head -n 40 >&2 || true
    echo "third-party: save the edit with scripts/third-party.sh save, or lay the tree out again with scripts/third-party.sh" >&2
    status=1
    continue
  fi
  echo "third-party: laying out $tree ($name $version + $patch_file)"
  rm -rf "$tree"
  mkdir -p build/third_party
  cp -a "$work/patched/$name" "$tree"
  # the crate's files carry its packaging date: newer ones make cargo see
  # that the tree changed
  find "$tree" -type f -exec touch {} +
done
if [ "$mode" = check ] && [ "$status" = 0 ]; then
  echo "third-party: the patched crates are the registry's plus their patches"
fi
exit "$status"
