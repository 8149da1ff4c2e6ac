#!/usr/bin/env bash
# Installs what building, testing and the demo need; idempotent, and quick when
# everything is already there. Runs as root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # the build: runwasi's libcontainer (seccomp, systemd cgroups, dbus) and protobuf
  protobuf-compiler libseccomp-dev pkg-config libsystemd-dev libdbus-1-dev build-essential
  # the runtime we plug into, and what the tests and demo use around it
  containerd runc containernetworking-plugins iproute2 curl busybox-static
  # guest toolchains
  nodejs npm python3-venv
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A machine may carry its own Node.js/Python outside dpkg: use those.
command -v node >/dev/null && command -v npm >/dev/null && missing=("${missing[@]/nodejs}") && missing=("${missing[@]/npm}")
read -r -a missing <<< "${missing[*]}"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "setup: run as root to install packages" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }

venv=build/tools/venv
requirements=(examples/hello-py/requirements.txt tests/requirements.txt)
if ! cat "${requirements[@]}" | cmp -s - "$venv/requirements.txt"; then
  echo "setup: installing Python tools (componentize-py, kubernetes-validate) into $venv"
  python3 -m venv "$venv"
  for r in "${requirements[@]}"; do "$venv/bin/pip" install -q --disable-pip-version-check -r "$r"; done
  cat "${requirements[@]}" > "$venv/requirements.txt"
fi
echo "setup: ok"
