#!/usr/bin/env bash
# The faithfulness verdict: every task, the twelve method configurations, on each model of $MODELS,
# with the corrected protocol (docs/guide/evaluation.md): only the dataset text perturbed,
# plain prompts unless a model says otherwise, ill-conditioned steps (ρ < MIN_RHO) left out of the
# means, random = mean over RANDOM_MAPS maps per step, shuffled and rank controls, DRAWS Bernoulli
# draws (PRESET=standard takes the draws, antithetic random maps and controls of that preset
# instead; gradellm_lens.evaluation.presets). Sharded over SHARDS processes of one thread each (default 2, one per core), resumable:
# rerun the same command to continue after an interruption. Then every task is summarised
# (`gradellm-lens summarize`: summary.md / .csv / _paired.csv / _pi_curves.png per task folder) and
# the cross-task tables are written: protocol.md, paired.md and scores.md in $OUT. Each shard appends
# its progress to $OUT/$model/shard-$shard.log, so a resumed or extended run keeps the earlier lines.
#
#   bash analyses/run_faithfulness.sh                       # the verdict (hours on a 2-core CPU)
#   N_SST2=2 N_IMDB=2 N_BOOLQ=2 N_TELLMEWHY=2 N_WIKIBIO=2 DRAWS=1 PIS=0.25,0.5,0.75 \
#     MODELS=smollm2-135m-instruct:plain OUT=/tmp/faith bash analyses/run_faithfulness.sh   # a dry run
#
# Choose each model's prompt format first (which one the model reads the text under):
#   python analyses/faithfulness_reads_text.py > analyses/results/faithfulness/reads_text.md
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-analyses/results/faithfulness}
MODELS=${MODELS:-"smollm2-135m-instruct:plain qwen2.5-coder-0.5b-instruct:${QWEN_FORMAT:-plain}"}
METHODS=${METHODS:-"grad_ellm,grad_ellm+layers=all,grad_ellm:reference,attention,attention_rollout,attention_x_gradient,saliency,input_x_gradient,integrated_gradients,occlusion,random,uniform"}
SIZES=${SIZES:-"sst2=${N_SST2:-30},imdb=${N_IMDB:-15},boolq=${N_BOOLQ:-15},tellmewhy=${N_TELLMEWHY:-8},wikibio=${N_WIKIBIO:-8}"}
SHARDS=${SHARDS:-2}
DEVICE=${DEVICE:-cpu}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUN=(--methods "$METHODS" --n "$SIZES" --pis "${PIS:-0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9}"
     --min-rho "${MIN_RHO:-0.1}" --text-tokens "${TEXT_TOKENS:-imdb=128,boolq=256}"
     --max-new-tokens "${MAX_NEW_TOKENS:-10}" --batch-size "${BATCH_SIZE:-64}" --device "$DEVICE")
if [ -n "${PRESET:-}" ]; then  # the preset's draws, antithetic random maps and controls; explicit values override
  RUN+=(--preset "$PRESET")
  [ -n "${DRAWS:-}" ] && RUN+=(--draws "$DRAWS")
  [ -n "${RANDOM_MAPS:-}" ] && RUN+=(--random-maps "$RANDOM_MAPS")
  [ -n "${CONTROLS:-}" ] && RUN+=(--controls "$CONTROLS")
else  # the protocol of the committed CPU verdict
  RUN+=(--draws "${DRAWS:-3}" --random-maps "${RANDOM_MAPS:-10}" --controls "${CONTROLS:-shuffled,rank}")
fi

for spec in $MODELS; do
  model=${spec%%:*}
  format=${spec#*:}
  [ "$format" = "$spec" ] && format=plain
  start=$(date +%s)
  pids=()
  for ((shard = 0; shard < SHARDS; shard++)); do
    mkdir -p "$OUT/$model"
    "$PYTHON" analyses/faithfulness_run.py --model "$model" --prompt-format "$format" --out "$OUT/$model" \
      --shard-index "$shard" --num-shards "$SHARDS" "${RUN[@]}" >> "$OUT/$model/shard-$shard.log" 2>&1 &
    pids+=($!)
  done
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  if [ "$status" != 0 ]; then
    echo "$model: a shard failed (see $OUT/$model/shard-*.log); rerun this command to resume" >&2
    exit 1
  fi
  echo "$model: $(( $(date +%s) - start )) s wall"
  for dir in "$OUT/$model"/*/; do
    if compgen -G "$dir/results*.jsonl" > /dev/null; then
      "$PYTHON" -m gradellm_lens.cli summarize "$dir" > "$dir/summarize.log"
    fi
  done
done

"$PYTHON" analyses/faithfulness_table.py "$OUT"
