# Two commands for a fresh clone: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto' | sort)

.PHONY: all setup gen import-graph lint typecheck test test-faults test-dishonest fuzz demo bench bench-linkage bench-bulk bench-policy bench-keys bench-numbering bench-registry bench-mappers bench-binding bench-legacy bench-log bench-portal clean

all: test

$(STAMP): pyproject.toml
	-.ci/debian-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Generated code is committed; `make gen` rewrites it byte for byte.
gen: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -I protos \
	  --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. $(PROTOS)

# docs/import-graph.md: which package imports which (tests/architecture checks it).
import-graph: $(STAMP)
	$(BIN)/python tests/support/imports.py > docs/import-graph.md

lint: $(STAMP)
	$(BIN)/buf lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/buf lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Issue 13's dishonest-operator tests alone (docs/separation.md); they are in `make test` too.
test-dishonest: $(STAMP)
	$(BIN)/python -m pytest -q -m dishonest

# Issue 12's fault suite: kills, stalls and floods against the parties as processes
# (docs/errors.md, "The fault suite"); not part of `make test`.
test-faults: $(STAMP)
	$(BIN)/python -m pytest -q tests/faults

# Fuzzing (docs/fuzzing.md): bounded and seeded, not part of `make test` (whose
# tests/integration/test_fuzz_smoke.py runs it in small). Failing inputs go to
# fuzz-state/corpus/; fixed ones are kept in tests/fuzz_corpus/ as regressions.
fuzz: $(STAMP)
	$(BIN)/python -m ops.fuzz --grpc 20000 --mappers 200000 --seed 12

demo: $(STAMP)
	$(BIN)/renkei demo

# Benchmarks print tables; they are not tests. Figures: docs/benchmarks.md.
bench: bench-linkage bench-bulk bench-policy bench-keys bench-numbering bench-registry bench-mappers bench-binding bench-legacy bench-log bench-portal

bench-linkage: $(STAMP)
	$(BIN)/renkei bench

# The verifiable log on SQLite: integration, proofs, commit to witnessed checkpoint.
bench-log: $(STAMP)
	$(BIN)/python -m ops.bench.log

# Issue 15: a person's history among 10 million hub entries, reconcile of a million
# exchanges, the purge of a year under traffic; SQLite (cached under bench-state/portal)
# and PostgreSQL.
bench-portal: $(STAMP)
	$(BIN)/python -m ops.bench.portal

bench-bulk: $(STAMP)
	$(BIN)/python -m ops.bench.bulk

bench-policy: $(STAMP)
	$(BIN)/python -m ops.bench.policy

bench-keys: $(STAMP)
	$(BIN)/python -m ops.bench.keys

bench-numbering: $(STAMP)
	$(BIN)/python -m ops.bench.numbering --count 1000000

bench-registry: $(STAMP)
	$(BIN)/python -m ops.bench.registry --count 1000000

bench-mappers: $(STAMP)
	$(BIN)/python -m ops.bench.mappers

# Four-fact binding: the matcher in process against a million residents, then
# the whole path (registry, ID issuer, hub as processes) for 20,000 records.
bench-binding: $(STAMP)
	$(BIN)/python -m ops.bench.matcher --count 1000000
	$(BIN)/python -m ops.bench.binding --count 20000

# End to end through each kind of legacy system (the demo's deployment, one process per party).
bench-legacy: $(STAMP)
	$(BIN)/python -m ops.bench.legacy --state-dir bench-state/legacy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-state bench-state bench-bulk-state fuzz-state
