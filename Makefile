# Two entry points for a fresh machine: `make run` (the gateway on the embedded local model)
# and `make test` (lint, type-check, the whole test suite). Both set everything up themselves.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck pytest setup setup-dev chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# llama-cpp-python compiles from source the first time (about 4 minutes); pip caches the wheel.
$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.dev-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,embeddings,dev]'
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
