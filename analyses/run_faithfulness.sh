#!/usr/bin/env bash
# Faithfulness report: all five tasks on SmolLM2-135M-Instruct, Grad-ELLM (default and `reference`
# variants) and every baseline, with the sample sizes below (sized for a 2-core CPU; see the
# README in analyses/results/faithfulness/). Resumable: rerun to continue an interrupted run.
#
#   bash analyses/run_faithfulness.sh            # everything
#   TASKS="sst2 imdb" bash analyses/run_faithfulness.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-analyses/results/faithfulness}
TASKS=${TASKS:-"sst2 imdb boolq tellmewhy wikibio"}
METHODS=${METHODS:-"grad_ellm,grad_ellm:reference,attention,attention_rollout,attention_x_gradient,saliency,input_x_gradient,integrated_gradients+n_steps=16,occlusion,random"}
# shared metric and task settings (recorded in every results header)
COMMON=(--model smollm2-135m-instruct --device cpu --methods "$METHODS" --seed 0
        --pis 0.1,0.3,0.5,0.7,0.9 --draws 1 --label-match restricted)

n_for() {  # examples per task
  case "$1" in
    sst2) echo "${N_SST2:-6}" ;;
    imdb) echo "${N_IMDB:-3}" ;;
    boolq) echo "${N_BOOLQ:-2}" ;;
    tellmewhy) echo "${N_TELLMEWHY:-1}" ;;
    wikibio) echo "${N_WIKIBIO:-1}" ;;
  esac
}
extra_for() {  # task-specific budgets: long fields cut to 48 tokens, 2 generated tokens
  case "$1" in
    imdb|boolq) echo "--max-text-tokens 48" ;;
    tellmewhy|wikibio) echo "--max-new-tokens 2" ;;
  esac
}

for task in $TASKS; do
  start=$(date +%s)
  # shellcheck disable=SC2046
  "$BIN/gradellm-lens" evaluate --task "$task" --n "$(n_for "$task")" --out-dir "$OUT/$task" \
    "${COMMON[@]}" $(extra_for "$task") --no-progress
  echo "$task: $(( $(date +%s) - start )) s wall"
done

# one table across tasks (mean and rank per method) from every task folder present
"$BIN/python" analyses/faithfulness_table.py "$OUT" > "$OUT/combined.md"
echo "wrote $OUT/combined.md"

# where each method puts its mass: dataset text vs template (explains the ranking; ~10 min)
if [ "${TEMPLATE_MASS:-1}" = 1 ]; then
  "$BIN/python" analyses/faithfulness_template_mass.py --task sst2 --n "$(n_for sst2)" --results "$OUT" \
    > "$OUT/template_mass.md"
  echo "wrote $OUT/template_mass.md"
fi
