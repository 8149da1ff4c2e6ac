# wasmhttp — run `make demo` to see it work, `make test` to check everything.
# Every target installs what it is missing through `make setup`.

CARGO ?= cargo
BIN := target/debug

.PHONY: setup build examples demo test clean

setup:
	@scripts/setup.sh

build: setup
	@echo "build: compiling the shim, the CLI and the fixture tool (first time: ~10 min)"
	$(CARGO) build --locked --workspace --bins

examples: build
	@$(MAKE) --no-print-directory -C examples/hello-js
	@$(MAKE) --no-print-directory -C examples/hello-py

demo: examples
	@scripts/demo.sh

test: examples
	@echo "test: Kubernetes manifests against the Kubernetes API schemas (offline)"
	build/tools/venv/bin/kubernetes-validate --strict --quiet deploy/*.yaml examples/*/k8s.yaml
	@echo "test: unit tests, wasmhttp serve, the shim under a private containerd, and CRI"
	$(CARGO) test --locked --workspace

clean:
	$(CARGO) clean
	@$(MAKE) --no-print-directory -C examples/hello-js clean
	@$(MAKE) --no-print-directory -C examples/hello-py clean
