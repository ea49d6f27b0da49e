# Every target sets up .venv itself on first use (Python 3.11 + pip is all a fresh machine needs).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= data
PORT   ?=

.PHONY: run test lint bench scenarios reliability vectors clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

## run: a registry and three nodes on 127.0.0.1 (the docker-compose.yml topology), data under ./data;
##      PORT=8600 puts the registry on 8600 and the nodes on 8601.. (default: the published ports)
run: $(VENV)/.installed
	$(PY) -m scenarios compose up --data $(DATA) $(if $(PORT),--base-port $(PORT))

## test: lint, type-check, the test suite, and the benchmarks at --quick size
test: $(VENV)/.installed lint
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## scenarios: every multi-node scenario at full size; the scaled ones at 20 nodes writing 1,000 entries each
scenarios: $(VENV)/.installed
	$(PY) -m scenarios run all --nodes 3 --entries 20000
	$(PY) -m scenarios run mesh-convergence --nodes 20 --entries 1000
	$(PY) -m scenarios run partition-heal --nodes 20 --entries 1000
	$(PY) -m scenarios run crash-restart --nodes 20 --entries 1000
	$(PY) -m scenarios run churn --nodes 20 --entries 1000
	$(PY) -m scenarios run partition-heal --netlab --nodes 3 --entries 20000

## reliability: fuzzing, SIGKILL (200 rounds), disk full, network faults and auth at full size; one table of figures
reliability: $(VENV)/.installed
	RELIABILITY=full $(PY) -m pytest tests/reliability --timeout 3600 -q -rs

## bench: every benchmark at full size (prints one JSON line each)
bench: $(VENV)/.installed
	$(PY) -m bench.append
	$(PY) -m bench.verify
	$(PY) -m bench.query
	$(PY) -m bench.sync
	$(PY) -m bench.registry
	$(PY) -m bench.federation
	$(PY) -m bench.steps

vectors: $(VENV)/.installed
	$(PY) -m protocol.vectors.generate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
