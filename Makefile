# One Makefile for people and CI: `make run` starts woobird, `make test` runs every check.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements/main.txt requirements/dev.txt pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "woobird needs Python 3.11 or newer (found: $$($(PY) --version))"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/main.txt -r requirements/dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)

.PHONY: install
install: $(STAMP)  ## create .venv/ and install woobird with its pinned dependencies

.PHONY: run
run: $(STAMP)  ## start web + worker (the sandbox demo when no accounts are configured)
	$(BIN)/woobird run

.PHONY: format
format: $(STAMP)  ## format the code
	$(BIN)/ruff format app workers tests bench migrations
	$(BIN)/ruff check --fix app workers tests bench migrations

.PHONY: lint
lint: $(STAMP)  ## ruff (format check + lint), mypy --strict, no test reading outside the repository
	$(BIN)/python -m tests.outside_paths tests bench
	$(BIN)/ruff format --check app workers tests bench migrations
	$(BIN)/ruff check app workers tests bench migrations
	$(BIN)/mypy

.PHONY: messages
messages: $(STAMP)  ## bring app/locale's catalogs in step with the code (then translate what it lists)
	$(BIN)/python -m app.i18n_catalog

.PHONY: services
services:  ## check that Redis (and PostgreSQL when TEST_DATABASE_URLS names it) answer
	@$(BIN)/python -m app.preflight

.PHONY: test
test: $(STAMP)  ## lint, types and the whole test suite (needs Redis; PostgreSQL optional)
	$(MAKE) --no-print-directory lint
	@$(BIN)/python -m app.preflight --for-tests
	$(BIN)/pytest -q -p no:cacheprovider

.PHONY: test-shop
test-shop: $(STAMP)  ## only the contract tests against a real WooCommerce (WOOBIRD_TEST_* variables, see README)
	$(BIN)/pytest -q -p no:cacheprovider -m realshop tests/realshop

.PHONY: audit
audit: $(STAMP)  ## pip-audit the pinned requirements for known vulnerabilities (needs network)
	$(BIN)/pip-audit --strict --disable-pip --no-deps -r requirements/main.txt -r requirements/dev.txt

.PHONY: bench
bench: $(STAMP)  ## run the benchmarks in bench/ and print their figures
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

.PHONY: mutation
mutation: $(STAMP)  ## mutation testing of the core with mutmut, per module (hours; not in test or CI)
	$(BIN)/python bench/mutation.py $(GROUPS)

.PHONY: clean
clean:  ## remove the virtualenv and local state
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .mutation mutants woobird.db
