# The node installer image: the static shim and the static node installer,
# nothing else (the installer needs no shell, nsenter or libc on the image).
#   docker build -f deploy/installer.Dockerfile -t docker.io/wasmhttp/node-installer:0.1.0 .
# (`make image` does this.) The DaemonSet runs it privileged, with hostPID and
# the host's / at /host; see deploy/installer.yaml or charts/wasmhttp.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/setup.sh build && scripts/static.sh

FROM scratch
COPY --from=build /src/build/static/containerd-shim-wasmhttp-v1 /usr/local/bin/containerd-shim-wasmhttp-v1
COPY --from=build /src/build/static/wasmhttp-node-installer /usr/local/bin/wasmhttp-node-installer
ENTRYPOINT ["/usr/local/bin/wasmhttp-node-installer"]
CMD ["install", "--stay"]
