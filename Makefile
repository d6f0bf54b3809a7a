# ChargeNet: `make run` starts the demo, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Test processes: most of the suite waits on sockets and timers, not the CPU, so two workers
# halve its time even on two cores. More flake on loaded small machines; `make test JOBS=1`
# runs it in one process.
JOBS   ?= 2

.PHONY: run test lint schema bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/chargenet serve

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy api gateway schema

schema: $(STAMP)
	$(BIN)/chargenet export-schema

clean:
	rm -rf $(VENV) chargenet.db chargenet.db-wal chargenet.db-shm .pytest_cache .mypy_cache .ruff_cache
