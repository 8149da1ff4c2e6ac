#!/usr/bin/env bash
# Fetches the containerd releases the suites run on beside the host's own
# (Debian bookworm's 1.6) into build/containerd/<version>/, without installing
# anything system-wide: `apt-get download` through a private sources list, then
# `dpkg-deb -x`. Versions and checksums are pinned; idempotent.
#   scripts/containerd-versions.sh     fetch what is missing
set -euo pipefail
cd "$(dirname "$0")/.."

# version directory, Debian suite, package version, sha256 of the .deb
releases=(
  "1.7 trixie 1.7.24~ds1-6+deb13u1 ed708deb96fe476a3bce4efa5c0538dfbcf717ab9a7c7944ba7260342c25899c"
  "2.1 sid 2.1.9+ds1-5 2dda86ce7033fd612fc50e136679d8174ccad680eb29cd4611e0d2a1b84cf591"
)
target=build/containerd
apt_dir=$target/apt

fetched=0
for release in "${releases[@]}"; do
  read -r dir suite version sha256 <<< "$release"
  if [ "$(cat "$target/$dir/.deb-sha256" 2>/dev/null)" = "$sha256" ]; then continue; fi
  if [ "$fetched" = 0 ]; then
    mkdir -p "$apt_dir/etc" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    : > "$apt_dir/etc/sources.list"
    for s in trixie sid; do
      echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main" >> "$apt_dir/etc/sources.list"
    done
    apt_options=(
      -o "Dir::Etc::sourcelist=$PWD/$apt_dir/etc/sources.list" -o Dir::Etc::sourceparts=-
      -o "Dir::State::Lists=$PWD/$apt_dir/lists" -o "Dir::Cache=$PWD/$apt_dir/cache"
      -o Debug::NoLocking=1 -o APT::Sandbox::User=root
    )
    echo "containerd-versions: reading Debian trixie and sid package lists (private, in $apt_dir)"
    apt-get "${apt_options[@]}" update -qq
    fetched=1
  fi
  echo "containerd-versions: containerd $version (Debian $suite) into $target/$dir"
  download=$(mktemp -d)
  (cd "$download" && apt-get "${apt_options[@]}" download -qq "containerd=$version")
  deb=$(ls "$download"/*.deb)
  if ! echo "$sha256  $deb" | sha256sum --check --quiet; then
    echo "containerd-versions: $(basename "$deb") does not have the pinned checksum $sha256" >&2
    echo "  (Debian $suite may have moved on from $version: update the pin in $0)" >&2
    exit 1
  fi
  rm -rf "${target:?}/$dir"
  mkdir -p "$target/$dir"
  dpkg-deb -x "$deb" "$target/$dir"
  "$target/$dir/usr/bin/containerd" --version
  echo "$sha256" > "$target/$dir/.deb-sha256"
  rm -rf "$download"
done
