# Herald. `make run` starts the service; `make test` runs lint, types and the whole suite.
# Needs only Python 3.11+ and make: uv is installed into .tools/ when it is not on PATH.

PYTHON ?= python3
UV_ON_PATH := $(shell command -v uv 2>/dev/null)
UV := $(if $(UV_ON_PATH),$(UV_ON_PATH),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen --no-sync

.PHONY: run test lint format openapi bench install clean contract-check docs-check docs-deps

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

install: $(UV)
	$(UV) sync --frozen

run: $(UV)
	$(UV) sync --frozen --no-dev --group embedded --inexact
	$(RUN) herald dev

test: install
	$(MAKE) --no-print-directory lint
	$(RUN) herald openapi --check
	$(RUN) pytest

lint: $(UV)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports

format: $(UV)
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

openapi: $(UV)
	$(RUN) herald openapi

# The API contract (docs/api.md): document rules, examples, generated Python and TypeScript
# clients, Redocly lint, docs pages offline and in headless Chromium. Also part of `make test`.
contract-check: install
	$(RUN) pytest tests/contract

# /docs and /redoc rendered by Debian's Chromium with no network (skipped without Chromium).
docs-check: install
	$(RUN) pytest -rs tests/contract/test_docs_browser.py tests/contract/test_docs_offline.py

# Chromium for docs-check (Debian/Ubuntu, as root); not run by `make test` (see docs/api.md).
docs-deps:
	command -v chromium >/dev/null || apt-get install -y --no-install-recommends chromium

bench: install
	$(RUN) python -m bench.foundation

clean:
	rm -rf .tools .venv .pytest_cache .mypy_cache .ruff_cache tools/pyclient/.venv tools/contract/node_modules
