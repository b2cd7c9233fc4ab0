#!/usr/bin/env bash
# The faithfulness verdict on a CUDA machine: the protocol of analyses/run_faithfulness.sh on
# Qwen2.5-Coder-1.5B-Instruct with 200 SST-2 and 100 examples of every other task, one process on
# the GPU, the same report (per-task summaries and protocol.md, paired.md, scores.md) in $OUT.
# The compute follows the measured variance budget: PRESET=standard (1 draw, 2 antithetic random
# maps, shuffled and rank controls; analyses/results/variance-budget/), so the examples get the
# compute. PRESET=paper spends more on draws and maps. Resumable: rerun to continue.
#
#   bash analyses/gpu_verdict.sh             # on the GPU machine
#   bash analyses/gpu_verdict.sh --dry-run   # n = 2, 1 draw, 3 π points, 2 generated tokens, on the CPU
#
# MODEL, PROMPT_FORMAT, OUT and every variable of run_faithfulness.sh can be overridden; e.g. a CPU
# dry run of the pipeline on a small model: MODEL=smollm2-135m-instruct bash analyses/gpu_verdict.sh --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-qwen2.5-coder-1.5b-instruct}
PROMPT_FORMAT=${PROMPT_FORMAT:-plain}
if [ "${1:-}" = "--dry-run" ]; then
  export OUT=${OUT:-/tmp/gradellm-lens-gpu-dry-run}
  export DEVICE=${DEVICE:-cpu} SHARDS=${SHARDS:-2} DRAWS=${DRAWS:-1} PIS=${PIS:-0.25,0.5,0.75}
  export MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-2} BATCH_SIZE=${BATCH_SIZE:-16}
  export SIZES=${SIZES:-"sst2=2,imdb=2,boolq=2,tellmewhy=2,wikibio=2"}
elif [ -n "${1:-}" ]; then
  echo "usage: bash analyses/gpu_verdict.sh [--dry-run]" >&2
  exit 2
else
  export OUT=${OUT:-analyses/results/faithfulness-gpu}
  export DEVICE=${DEVICE:-cuda} SHARDS=${SHARDS:-1} BATCH_SIZE=${BATCH_SIZE:-256}
  export SIZES=${SIZES:-"sst2=200,imdb=100,boolq=100,tellmewhy=100,wikibio=100"}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
fi
export PRESET=${PRESET:-standard}
export MODELS="$MODEL:$PROMPT_FORMAT"
exec bash analyses/run_faithfulness.sh
