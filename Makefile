# Every target builds its own virtualenv: a fresh machine needs only Python 3.11+ and a C compiler.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORLD ?= .nbo/world

.PHONY: venv test lint demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy .

test: lint
	$(BIN)/pytest

demo: venv
	$(BIN)/nbo demo --out $(WORLD)

bench: venv
	$(BIN)/python -m benchmarks.generate_speed --users 100000 --days 90
	$(BIN)/python -m benchmarks.store_speed --users 20000 --days 60 --replicate 5
	$(BIN)/python -m benchmarks.train_speed --users 20000 --days 90
	$(BIN)/python -m benchmarks.instacart
	$(BIN)/python -m benchmarks.serving --quick

clean:
	rm -rf $(VENV) .nbo .pytest_cache .mypy_cache .ruff_cache
