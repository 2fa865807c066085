# Two commands on a fresh machine: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test test-fast lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start the whole system on an embedded Redis, post a demo load, keep running until Ctrl-C.
run: $(STAMP)
	$(BIN)/hotline up --demo 50 --data-dir .hotline/redis

## Start everything, post 200 calls, check each is dispatched, stop.
demo: $(STAMP)
	$(BIN)/hotline demo --tickets 200

## The whole test suite: unit, integration (real Redis), end-to-end (real processes).
test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services tools

clean:
	rm -rf $(VENV) .hotline .pytest_cache .mypy_cache .ruff_cache
