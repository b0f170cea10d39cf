# The two commands a new user runs are `make demo` and `make test`; both build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_URL := postgresql+asyncpg://postgres@127.0.0.1:5432/test
# The PostgreSQL tests run when a server answers on 127.0.0.1:5432.
PG_ANSWERS = $(shell $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null && echo yes)

.PHONY: venv demo test soak bench lint clean

venv: $(STAMP)

# Re-run the install only when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/changeclothes demo

# Workers for `make test` (pytest-xdist): the tests mostly wait on servers and subprocesses.
# TEST_WORKERS=0 runs them in one process. Tests that bound a duration (marker `timing`) run
# afterwards on their own, so the other workers' load cannot slow them.
TEST_WORKERS ?= 4
PG_ENV = $(if $(PG_ANSWERS),CHANGECLOTHES_TEST_PG=$(PG_URL))

test: $(STAMP)
	$(PG_ENV) $(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not timing"
	$(PG_ENV) $(BIN)/python -m pytest -m timing

# The crash and soak tests at full length (make test runs them in a short form).
soak: $(STAMP)
	$(PG_ENV) CHANGECLOTHES_SOAK=long $(BIN)/python -m pytest -m soak

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check runner tests bench sample_manifests migrations
	$(BIN)/ruff format --check runner tests bench sample_manifests migrations
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
