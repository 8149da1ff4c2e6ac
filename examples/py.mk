# Builds a Python example (componentize-py) into a component and an image.
# An example's Makefile sets NAME and WORLD and includes this file:
#   make            -> build/$(NAME).wasm and build/$(NAME).tar (image $(NAME):latest)
# Needs the workspace binaries (`make build` at the top) and componentize-py
# (installed by `make setup` into build/tools/venv).
ROOT := $(abspath ../..)
BIN := $(ROOT)/target/debug
COMPONENTIZE_PY ?= $(ROOT)/build/tools/venv/bin/componentize-py

# An example that is not run alone (middleware) builds the component only:
# it sets TARGET := build/$(NAME).wasm.
TARGET ?= build/$(NAME).tar
all: $(TARGET)

build/wit/world.wit: wit/world.wit $(BIN)/wasmhttp-fixtures
	$(BIN)/wasmhttp-fixtures wit build/wit wit/world.wit $(WIT_FLAGS)

build/$(NAME).wasm: src/app.py build/wit/world.wit
	@echo "componentize-py: building $@ (about 20 s)"
	$(COMPONENTIZE_PY) -d build/wit -w $(WORLD) componentize -p src app -o $@

build/$(NAME).tar: build/$(NAME).wasm $(BIN)/wasmhttp
	$(BIN)/wasmhttp image $< --name $(NAME):latest -o $@

clean:
	rm -rf build

.PHONY: all clean
