# Every target sets up .venv itself on first use (Python 3.11 + pip is all a fresh machine needs).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= data

.PHONY: run test lint bench vectors clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

## run: start one node (ledger node-a) with its key and SQLite store under ./data
run: $(VENV)/.installed
	@echo "Starting node-a on http://127.0.0.1:8700 (data in $(DATA)/node-a). In another shell:"
	@echo "  $(VENV)/bin/ledger-node append --stream proofs --type proof --payload '{\"doc\": 1}' --subject-oid oid:demo:1"
	@echo "  $(VENV)/bin/ledger-node query --subject-oid oid:demo:1"
	@echo "  $(VENV)/bin/ledger-node stats"
	@echo "Stop with Ctrl-C."
	$(VENV)/bin/ledger-node run --ledger-id node-a --data-dir $(DATA)/node-a --port 8700

## test: lint, type-check, the test suite, and the benchmarks at --quick size
test: $(VENV)/.installed lint
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## bench: every benchmark at full size (prints one JSON line each)
bench: $(VENV)/.installed
	$(PY) -m bench.append
	$(PY) -m bench.verify
	$(PY) -m bench.query
	$(PY) -m bench.sync
	$(PY) -m bench.registry
	$(PY) -m bench.federation

vectors: $(VENV)/.installed
	$(PY) -m protocol.vectors.generate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
