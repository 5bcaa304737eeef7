# One task runner: the same targets run locally and in .ci/run.
# The newest Python the project supports (3.11 to 3.13) that actually runs here (pyenv shims may not).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null && { command -v $$p; break; }; \
	done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install up test test-fast test-multihost chaos chaos-faults lint typecheck check bench deploy-files clean

install: $(STAMP)

# The venv gets the package editable with every extra and the dev tools, pinned by requirements.lock.
$(STAMP): pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "error: ca-actors needs Python 3.11, 3.12 or 3.13 (python3.13, python3.12 or python3.11 on PATH)"; exit 1; }
	@echo "using $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[llm,langgraph,postgres,redis,tools,mlflow,plot,ui,deploy,dev]'
	touch $(STAMP)

up: install
	$(BIN)/ca-actors up --demo

test: install
	$(BIN)/pytest

# The pure tests only (tests/unit/: no server, process or network), for the edit loop; `test` runs every kind.
test-fast: install
	$(BIN)/pytest tests/unit

# The long chaos suite (100 runs per scenario, a few minutes each); `test` runs its short form.
# Figures are appended to .ca-actors/chaos-figures.jsonl (see docs/reliability.md).
chaos: install
	mkdir -p .ca-actors
	CA_CHAOS_FIGURES=$(CURDIR)/.ca-actors/chaos-figures.jsonl $(BIN)/pytest tests/chaos -m chaos_full -s

# deploy/compose.yaml and deploy/k8s/ are `ca-actors deploy` of the examples (a test checks they match).
deploy-files: install
	$(BIN)/ca-actors deploy configs/examples --target compose --out deploy --flows-dir ../configs/examples \
		--build-context .. --force
	rm -rf deploy/k8s
	$(BIN)/ca-actors deploy configs/examples --target k8s --out deploy/k8s

# Hosts made of network namespaces: a 3-node NATS cluster, the control plane, agents (needs root). Also in `test`.
test-multihost: install
	$(BIN)/pytest -m multihost tests/e2e

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: install
	$(BIN)/ca-actors bench

# Faults hitting work in flight (worker kills and stalls, NATS restarts, control-plane kills), with
# recovery times and repeated provider calls: the figures of docs/recovery.md.
chaos-faults: install
	$(BIN)/python -m tests.chaos.faults

clean:
	rm -rf $(VENV) .ca-actors .pytest_cache .mypy_cache .ruff_cache
