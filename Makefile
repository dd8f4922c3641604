# Two commands for a newcomer: `make train` and `make test`. Both create .venv when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: setup train test test-slow lint bench

setup:
	@bash scripts/setup_venv.sh

train: setup
	$(VENV)/bin/mcrl-train $(ARGS)

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	$(VENV)/bin/ruff check .
