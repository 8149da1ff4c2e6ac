#!/usr/bin/env bash
# Fetches packages from Debian's newer suites that the suites run beside the
# host's own, without installing anything system-wide: `apt-get download`
# through a private sources list, then `dpkg-deb -x` into build/. Versions and
# checksums are pinned; idempotent.
#   scripts/debian-extras.sh containerd   containerd 1.7 and 2.1 (beside bookworm's 1.6)
#   scripts/debian-extras.sh etcd         etcd 3.5 for the k8s suite's control plane
#   scripts/debian-extras.sh docker       Docker Engine 28 and its CLI, run privately by the docker suite
set -euo pipefail
cd "$(dirname "$0")/.."

# group, directory, Debian suite, package, package version, sha256 of the .deb
packages=(
  "containerd build/containerd/1.7 trixie containerd 1.7.24~ds1-6+deb13u1 ed708deb96fe476a3bce4efa5c0538dfbcf717ab9a7c7944ba7260342c25899c"
  "containerd build/containerd/2.1 sid containerd 2.1.9+ds1-5 2dda86ce7033fd612fc50e136679d8174ccad680eb29cd4611e0d2a1b84cf591"
  "etcd build/etcd sid etcd-server 3.5.30-2 11a4f7e350c5020b83edff5160a6063d4e56ac9cd014d21ce8916378bf96de79"
  "docker build/docker/engine sid docker.io 28.5.2+dfsg4-5 69a59cc77a1fb8ee9ad6859abc2e6de5d76b70887405595c2b1307818fecf682"
  "docker build/docker/cli sid docker-cli 28.5.2+dfsg4-5 8ea2428acdda666f41263f5a0d3a85681a696491361574eb7bd721a1194939b9"
)
group=${1:?usage: debian-extras.sh containerd|etcd|docker}
apt_dir=build/debian-apt

updated=0
found=0
for entry in "${packages[@]}"; do
  read -r entry_group dir suite package version sha256 <<< "$entry"
  [ "$entry_group" = "$group" ] || continue
  found=1
  if [ "$(cat "$dir/.deb-sha256" 2>/dev/null)" = "$sha256" ]; then continue; fi
  apt_options=(
    -o "Dir::Etc::sourcelist=$PWD/$apt_dir/etc/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$PWD/$apt_dir/lists" -o "Dir::Cache=$PWD/$apt_dir/cache"
    -o Debug::NoLocking=1 -o APT::Sandbox::User=root
  )
  if [ "$updated" = 0 ]; then
    mkdir -p "$apt_dir/etc" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    : > "$apt_dir/etc/sources.list"
    for s in trixie sid; do
      echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main" >> "$apt_dir/etc/sources.list"
    done
    echo "debian-extras: reading Debian trixie and sid package lists (private, in $apt_dir)"
    apt-get "${apt_options[@]}" update -qq
    updated=1
  fi
  echo "debian-extras: $package $version (Debian $suite) into $dir"
  download=$(mktemp -d)
  (cd "$download" && apt-get "${apt_options[@]}" download -qq "$package=$version")
  deb=$(ls "$download"/*.deb)
  if ! echo "$sha256  $deb" | sha256sum --check --quiet; then
    echo "debian-extras: $(basename "$deb") does not have the pinned checksum $sha256" >&2
    echo "  (Debian $suite may have moved on from $version: update the pin in $0)" >&2
    exit 1
  fi
  rm -rf "${dir:?}"
  mkdir -p "$dir"
  dpkg-deb -x "$deb" "$dir"
  echo "$sha256" > "$dir/.deb-sha256"
  rm -rf "$download"
done
[ "$found" = 1 ] || { echo "debian-extras: no package group $group" >&2; exit 1; }
