# cartkeeper: `make run` (local Temporal + worker + demo) and `make test`.
# GNU make. Everything runs from the project's virtualenv (.venv), created on demand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Touched after a successful install: the venv is rebuilt only when pyproject.toml changes.
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench chaos clean distclean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv and install cartkeeper with its dev extras

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { \
	  $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	    echo "cartkeeper needs Python 3.11 or newer: make PYTHON=python3.12 ..." >&2; exit 1; }; \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: venv ## Temporal dev server + worker + demo carts (Ctrl-C to stop)
	$(BIN)/cartkeeper dev --simulate

test: venv ## the test suite (PostgreSQL tests need TEST_DATABASE_URL; installs Chromium for the browser tests)
	chromium="$$(scripts/install-browser)" && CARTKEEPER_CHROMIUM="$$chromium" $(BIN)/pytest

lint: venv ## ruff and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/mypy .

bench: venv ## the benchmark (bench/run.py; needs PostgreSQL for lifecycle_postgres)
	$(BIN)/python -m bench.run

chaos: venv ## the chaos run (bench/chaos.py; needs PostgreSQL): kills, outage, restart, invariants
	$(BIN)/python -m bench.chaos

clean: ## caches and build artifacts (keeps .venv and data/)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean ## also .venv and data/ (the dev server's and the read model's files)
	rm -rf $(VENV) data
