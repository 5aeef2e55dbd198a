# inferd: the two commands a new machine needs are `make run` and `make test`;
# each installs what it needs first (Debian packages, the default model).

CARGO ?= cargo
# llama.cpp is compiled by cmake inside the llama-cpp-2 build script; without this it
# compiles one file at a time.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test deps model build lint bench fmt

## run: serve the default model on http://127.0.0.1:8080 (release build)
run: deps model
	$(CARGO) run --release -- serve $(ARGS)

## test: the whole test suite (unit, end-to-end against the real model, openai client)
test: deps model
	# The artifact store's S3 test runs against moto's S3 server (PyPI moto[server]).
	moto="$$(scripts/install-moto.sh)" && INFERD_TEST_MOTO="$$moto" $(CARGO) test --workspace
	# `cargo test --workspace` has built target/debug/inferd (the e2e tests need it); a separate
	# `cargo build` could resolve features differently and recompile llama.cpp.
	scripts/openai-client-check.sh target/debug/inferd

deps:
	scripts/install-deps.sh

model:
	scripts/fetch-default-model.sh

build: deps
	$(CARGO) build --release

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: inferd vs llama.cpp (llama-cpp-python) decode tokens/s and time to first token
bench: deps model build
	scripts/bench/engine-vs-llamacpp.sh
