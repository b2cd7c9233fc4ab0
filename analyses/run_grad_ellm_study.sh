#!/usr/bin/env bash
# The Grad-ELLM switch study (analyses/grad_ellm_study.py): the verdict's protocol and examples
# (plain prompts, user text perturbed, ρ ≥ 0.1, π ∈ {0.25, 0.5, 0.75}, 10 random maps), with one
# Bernoulli draw and the shuffled control only, on SST-2 (50 examples, every single layer too) for
# SmolLM2 and Qwen2.5-Coder-0.5B, and TellMeWhy (8 examples, 2 explained tokens) for Qwen-0.5B.
# Two one-thread shards per run; rerun the same command to resume. Then the tables and the figure.
#
#   bash analyses/run_grad_ellm_study.sh                 # everything (about 4 h on two cores)
#   RUNS="smollm2-135m-instruct:sst2=2:per-layer" OUT=/tmp/study bash analyses/run_grad_ellm_study.sh   # a dry run
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-analyses/results/grad-ellm-study}
# model:task=n:extra:combine, extra = per-layer (every single layer too), baselines (the first round's
# last layer and all layers, and the released code, beside a second round) or empty; the second round
# (sum_then_relu) after the first. TellMeWhy has the second round and its baselines only (compute).
RUNS=${RUNS:-"smollm2-135m-instruct:sst2=50:per-layer:relu_then_sum qwen2.5-coder-0.5b-instruct:sst2=50:per-layer:relu_then_sum
  qwen2.5-coder-0.5b-instruct:tellmewhy=8:baselines:sum_then_relu
  smollm2-135m-instruct:sst2=50::sum_then_relu qwen2.5-coder-0.5b-instruct:sst2=50::sum_then_relu"}
for run in $RUNS; do
  IFS=: read -r model sizes extra combine <<< "$run"
  methods=$("$PYTHON" analyses/grad_ellm_study.py methods --model "$model" ${extra:+--$extra} \
    --combine "${combine:-relu_then_sum}" 2>/dev/null)
  MODELS="$model:plain" OUT="$OUT" METHODS="$methods" SIZES="$sizes" DRAWS=1 PIS=0.25,0.5,0.75 RANDOM_MAPS=10 \
    CONTROLS=shuffled MAX_NEW_TOKENS=2 PYTHON="$PYTHON" bash analyses/run_faithfulness.sh
done
"$PYTHON" analyses/grad_ellm_study.py tables "$OUT"
