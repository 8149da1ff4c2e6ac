# A k3s node that already has wasmhttp: the context is a host root prepared by
# `wasmhttp-node-installer install --flavour k3s` (the static shim under
# /opt/wasmhttp/bin, its link in /usr/local/bin, and the containerd template
# that extends k3s's base one). Built by tests/k3d/run.sh.
ARG K3S_IMAGE=docker.io/rancher/k3s:v1.31.5-k3s1
FROM ${K3S_IMAGE}
COPY opt/wasmhttp/bin/containerd-shim-wasmhttp-v1 /opt/wasmhttp/bin/containerd-shim-wasmhttp-v1
COPY usr/local/bin/containerd-shim-wasmhttp-v1 /usr/local/bin/containerd-shim-wasmhttp-v1
COPY var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl /var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl
