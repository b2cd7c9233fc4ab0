# The two commands a newcomer needs:  make demo  |  make test
VENV ?= .venv
BIN := $(VENV)/bin
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-fast test-slow bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/gradellm-lens demo --out demo_report.html

test: setup
	@bash scripts/install-browser.sh
	@PYTHON=$(BIN)/python bash scripts/install-models.sh gemma qwen-0.5b
	$(BIN)/python -m pytest -m "not slow" -q
	$(BIN)/python -m pytest -m slow -q

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: setup
	$(BIN)/python -m pytest -m slow -q

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache demo_report.html
