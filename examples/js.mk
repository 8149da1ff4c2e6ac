# Builds a JavaScript example (componentize-js) into a component and an image.
# An example's Makefile sets NAME and WORLD and includes this file:
#   make            -> build/$(NAME).wasm and build/$(NAME).tar (image $(NAME):latest)
# Needs the workspace binaries (`make build` at the top) and npm.
ROOT := $(abspath ../..)
BIN := $(ROOT)/target/debug

all: build/$(NAME).tar

# `npm ci` refuses this lockfile because it lacks other platforms' optional
# binaries (an npm limitation); `npm install --no-save` installs exactly the
# locked versions and leaves the lockfile alone.
node_modules/.package-lock.json: package.json package-lock.json
	npm install --no-save --no-audit --no-fund --loglevel=error

build/wit/world.wit: wit/world.wit $(BIN)/wasmhttp-fixtures
	$(BIN)/wasmhttp-fixtures wit build/wit wit/world.wit --as-version 0.2.10

build/$(NAME).wasm: src/app.js build/wit/world.wit node_modules/.package-lock.json
	@echo "componentize-js: building $@ (about 30 s)"
	# componentize-js resolves paths from the filesystem root, so hand it absolute ones
	node_modules/.bin/componentize-js $(CURDIR)/src/app.js --wit $(CURDIR)/build/wit --world-name $(WORLD) -o $(CURDIR)/$@

build/$(NAME).tar: build/$(NAME).wasm $(BIN)/wasmhttp
	$(BIN)/wasmhttp image $< --name $(NAME):latest -o $@

clean:
	rm -rf build

.PHONY: all clean
