# One task runner: the same targets run locally and in .ci/run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install up test test-fast lint typecheck check bench clean

install: $(STAMP)

# The venv gets the package editable with every extra and the dev tools, pinned by requirements.lock.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[llm,langgraph,postgres,redis,tools,mlflow,plot,dev]'
	touch $(STAMP)

up: install
	$(BIN)/ca-actors up --demo

test: install
	$(BIN)/pytest

# The pure tests only (tests/unit/: no server, process or network), for the edit loop; `test` runs every kind.
test-fast: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: install
	$(BIN)/ca-actors bench

clean:
	rm -rf $(VENV) .ca-actors .pytest_cache .mypy_cache .ruff_cache
