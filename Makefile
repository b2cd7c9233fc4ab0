# The two commands a newcomer needs:  make demo  |  make test
VENV ?= .venv
VENV_TL3 ?= .venv-tl3
BIN := $(VENV)/bin
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-fast test-slow test-tl3 bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/gradellm-lens demo --out demo_report.html

test: setup
	@bash scripts/install-browser.sh
	@PYTHON=$(BIN)/python bash scripts/install-models.sh gemma qwen-0.5b
	$(BIN)/python -m pytest -m "not slow" -q
	$(BIN)/python -m pytest -m slow -q
	@$(MAKE) --no-print-directory test-tl3

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: setup
	$(BIN)/python -m pytest -m slow -q

# TransformerLens 3.x (HookedTransformer) tier, in its own virtualenv
test-tl3:
	@bash scripts/setup-tl3.sh
	$(VENV_TL3)/bin/python -m pytest -q tests_tl3

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(VENV_TL3) .pytest_cache demo_report.html
