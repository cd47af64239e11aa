# Two entry points for a fresh machine: `make run` (the gateway on the embedded local model)
# and `make test` (lint, type-check, the whole test suite). Both set everything up themselves.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck pytest setup setup-dev chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# llama-cpp-python compiles from source (about 4 minutes) once per machine, into keel's own wheel
# folder, for a portable CPU (x86-64 with AVX2) rather than -march=native: a native build on a
# virtual machine whose CPU advertises AMX died with SIGILL at the first token, and pip's own
# wheel cache would hand a native build to the next machine whatever its CPU. The version is the
# one pyproject.toml pins.
LLAMA_VERSION := 0.3.36
LLAMA_WHEELS  ?= $(HOME)/.cache/keel/wheels/llama-cpp-portable
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
                    -DGGML_BMI2=ON -DGGML_AVX512=OFF
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
endif
LLAMA_WHEEL := $(LLAMA_WHEELS)/.built-$(LLAMA_VERSION)

$(LLAMA_WHEEL): | $(BIN)/python
	mkdir -p $(LLAMA_WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel --quiet --no-deps --no-cache-dir \
	  -w $(LLAMA_WHEELS) 'llama-cpp-python==$(LLAMA_VERSION)'
	touch $@

$(VENV)/.run-deps: pyproject.toml $(LLAMA_WHEEL) | $(BIN)/python
	$(BIN)/pip install --quiet --find-links $(LLAMA_WHEELS) -e '.[local]'
	touch $@

$(VENV)/.dev-deps: pyproject.toml $(LLAMA_WHEEL) | $(BIN)/python
	$(BIN)/pip install --quiet --find-links $(LLAMA_WHEELS) -e '.[local,embeddings,dev]'
	touch $(VENV)/.run-deps $@

# The dashboard's browser tests drive Debian's Chromium through Playwright; no browser is downloaded.
CHROMIUM ?= /usr/bin/chromium

chromium:
	@test -x $(CHROMIUM) || { echo "make: $(CHROMIUM) is missing: installing Debian's chromium package"; \
	  apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; }
	@test -x $(CHROMIUM) || { echo "make: error: $(CHROMIUM) is missing and could not be installed" \
	  "(run 'apt-get install -y chromium' as root); the dashboard tests need it" >&2; exit 1; }

setup: $(VENV)/.run-deps
setup-dev: $(VENV)/.dev-deps chromium

run: setup
	$(BIN)/keel serve

lint: setup-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup-dev
	$(BIN)/mypy

pytest: setup-dev
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .keel .pytest_cache .mypy_cache .ruff_cache
