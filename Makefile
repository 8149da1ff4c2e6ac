# wasmhttp — run `make demo` to see it work, `make test` to check everything.
# Every target installs what it is missing through `make setup`.

CARGO ?= cargo
BIN := target/debug
PY := build/tools/venv/bin/python

.PHONY: setup build static image examples demo demo-cgi test k8s-test soak fuzz bench k3d-test clean

setup:
	@scripts/setup.sh

# The test targets too: they turn on dev-dependency features of shared crates,
# and building the binaries without them would compile the workspace's
# dependencies twice (once here, once more for `cargo test`).
build: setup
	@echo "build: compiling the shim, the CLI, the node installer, the fixture tool and the tests (first time: ~15 min)"
	$(CARGO) build --locked --workspace --bins --tests

# Statically linked shim and node installer for nodes (build/static/).
static:
	@scripts/setup.sh build
	@scripts/static.sh

# The node installer image (shim + installer), where a Docker engine exists.
IMAGE ?= docker.io/wasmhttp/node-installer:0.1.0
image:
	docker build -f deploy/installer.Dockerfile -t $(IMAGE) .

examples: build
	@$(MAKE) --no-print-directory -C examples/hello-js
	@$(MAKE) --no-print-directory -C examples/hello-py
	@$(MAKE) --no-print-directory -C examples/service-py
	@$(MAKE) --no-print-directory -C examples/proxy-js
	@$(MAKE) --no-print-directory -C examples/files-py
	@$(MAKE) --no-print-directory -C examples/counter-py
	@$(MAKE) --no-print-directory -C examples/cgi-c
	@$(MAKE) --no-print-directory -C examples/cgi-lua
	@$(MAKE) --no-print-directory -C examples/auth-py
	@$(MAKE) --no-print-directory -C examples/cors-py
	@$(MAKE) --no-print-directory -C examples/app

demo: examples
	@scripts/demo.sh

# The C CGI example (examples/cgi-c) under containerd, WASMHTTP_MODE=cgi.
demo-cgi: examples
	@scripts/demo.sh cgi-c

test: examples static
	@echo "test: the patched runwasi crates are crates.io's plus third_party/*.patch"
	scripts/third-party.sh check
	@echo "test: shell scripts (shellcheck)"
	shellcheck scripts/*.sh tests/*.sh tests/k3d/*.sh tests/k8s/*.sh bench/*.sh
	@echo "test: Helm chart and manifests (helm lint/template, Kubernetes schemas, deploy/ = chart)"
	$(PY) tests/manifests.py
	@echo "test: static node binaries"
	tests/static-binaries.sh
	@echo "test: unit tests, wasmhttp serve, hostile clients and guests, the shim under a private containerd, CRI, Docker Engine, the node installer, a 60 s soak"
	$(CARGO) test --locked --workspace
	@echo "test: fuzz targets, 30 s each (make fuzz for longer)"
	scripts/fuzz.sh 30
	@echo "test: a smoke run of every make bench section that needs no wasmtime CLI (numbers not kept)"
	scripts/static.sh bench
	python3 bench/bench.py --smoke --out build/bench-smoke

# The soak of `make test` for 10 minutes (SOAK_SECONDS to change): a steady
# load through the shim under containerd; report in build/soak/report.json.
SOAK_SECONDS ?= 600
soak: build
	@mkdir -p build/soak
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_REPORT=$(CURDIR)/build/soak/report.json \
		$(CARGO) test --locked -p wasmhttp --test soak

# Every cargo-fuzz target (fuzz/) for FUZZ_SECONDS each; needs nightly.
FUZZ_SECONDS ?= 300
fuzz: build
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# Throughput, latency, cold start, memory and density against native hyper,
# `wasmtime serve` and runc (bench/bench.py; results in build/bench/).
# ARGS=--quick for a short run; `make test` runs every section but the
# wasmtime CLI's for a second each (--smoke), so the bench cannot rot.
bench:
	@bench/run.sh $(ARGS)

# Real Kubernetes built from source (tests/k8s: the version go.mod pins; about
# 9 min to build the first time, cached in ~/.cache/wasmhttp/k8s/), two
# nodes with containerd 2.1 inside a network namespace, the chart installed
# with helm, and every scenario of tests/k8s/test_k8s.py. K8S_KEEP=1 leaves
# the cluster up; `tests/k8s/run.sh --down` removes it. Needs root.
k8s-test: examples static
	@tests/k8s/run.sh $(ARGS)

# A real cluster: k3d with a prebuilt node image, then with the Helm chart.
# Needs a Docker engine and k3d; not part of `make test`.
k3d-test:
	@tests/k3d/run.sh --preflight
	@$(MAKE) --no-print-directory examples static
	@tests/k3d/run.sh

clean:
	$(CARGO) clean
	rm -rf build/static
	@$(MAKE) --no-print-directory -C examples/hello-js clean
	@$(MAKE) --no-print-directory -C examples/hello-py clean
	@$(MAKE) --no-print-directory -C examples/service-py clean
	@$(MAKE) --no-print-directory -C examples/proxy-js clean
	@$(MAKE) --no-print-directory -C examples/files-py clean
	@$(MAKE) --no-print-directory -C examples/counter-py clean
	@$(MAKE) --no-print-directory -C examples/cgi-c clean
	@$(MAKE) --no-print-directory -C examples/cgi-lua clean
