"""One shard of the faithfulness verdict: every task, one model, one process (resumable).

The protocol (see docs/guide/evaluation.md): only the dataset text is perturbed,
ill-conditioned steps (ρ < ``--min-rho``) are left out of the means, ``random`` is the mean over
``--random-maps`` maps per step, and every other method but ``uniform`` is evaluated with its
shuffled and rank-normalised controls (``--controls``). ``--preset`` takes the draws, the random
maps (as antithetic pairs) and the controls from a named preset (:mod:`gradellm_lens.evaluation.presets`,
recorded in the results header); explicit options override it, and ``--n`` stays per task. Results go to ``<out>/<task>/results.shard-i-of-n.jsonl``;
rerunning the same command resumes, so an interrupted shard loses at most the pair in progress.
The model is loaded once for all tasks. ``analyses/run_faithfulness.sh`` runs two shards side by
side and then summarises; ``analyses/gpu_verdict.sh`` runs one shard on a GPU::

    python analyses/faithfulness_run.py --model smollm2-135m-instruct --prompt-format plain \\
        --out analyses/results/faithfulness/smollm2-135m-instruct --n sst2=30,imdb=15 --shard-index 0 --num-shards 2
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from gradellm_lens import load_model
from gradellm_lens.cli.evaluate import parse_controls, parse_pis
from gradellm_lens.errors import InvalidInputError, LensError
from gradellm_lens.evaluation import EvaluationConfig, parse_method_specs, results_path, run_evaluation
from gradellm_lens.evaluation.presets import list_presets
from gradellm_lens.evaluation.runner import explicit_map_options, preset_config
from gradellm_lens.tasks import list_tasks, make_task

METHODS = (
    "grad_ellm,grad_ellm+layers=all,grad_ellm:reference,attention,attention_rollout,attention_x_gradient,"
    "saliency,input_x_gradient,integrated_gradients,occlusion,random,uniform"
)
SIZES = "sst2=30,imdb=15,boolq=15,tellmewhy=8,wikibio=8"
TEXT_TOKENS = "imdb=128,boolq=256"


def parse_task_counts(text: str, option: str) -> dict[str, int]:
    """``"sst2=30,imdb=15"`` -> ``{"sst2": 30, "imdb": 15}`` (tasks in the given order)."""
    counts = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        task, sep, value = item.partition("=")
        if not sep or not value.isdigit() or int(value) < 1:
            raise InvalidInputError(f"{option} wants task=count pairs such as sst2=30, got {item!r}.")
        if task not in list_tasks("evaluation"):
            raise InvalidInputError(
                f"{option} names unknown task {task!r}; tasks: {', '.join(list_tasks('evaluation'))}."
            )
        counts[task] = int(value)
    return counts


def make_verdict_task(name: str, budgets: dict[str, int], **options):
    """Task ``name`` as the verdict builds it: its long field cut to ``budgets[name]`` tokens where
    ``budgets`` (from ``--text-tokens``) names the task, uncut otherwise."""
    return make_task(name, **options, **({"max_text_tokens": budgets[name]} if name in budgets else {}))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="built-in model name, e.g. smollm2-135m-instruct")
    p.add_argument("--prompt-format", choices=("plain", "chat"), default="plain", help="default plain")
    p.add_argument("--out", type=Path, required=True, help="folder of this model's task folders")
    p.add_argument("--n", default=SIZES, help=f"examples per task (default {SIZES})")
    p.add_argument("--methods", default=METHODS, help="method specs (default: the twelve of the verdict)")
    p.add_argument("--pis", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", help="π grid (default 0.1…0.9)")
    p.add_argument("--preset", choices=list_presets(), default=None,
                   help="draws, random maps (antithetic) and controls of a named preset (default: none)")  # fmt: skip
    p.add_argument("--draws", type=int, default=None, help="Bernoulli draws per keep vector (default 3, or the preset's)")
    p.add_argument("--random-maps", type=int, default=None,
                   help="random maps per step (default 10 independent ones, or the preset's antithetic pairs)")  # fmt: skip
    p.add_argument("--controls", default=None,
                   help="controls beside each method: shuffled, rank, both (default) or none")  # fmt: skip
    p.add_argument("--min-rho", type=float, default=0.1, help="ill-conditioning threshold on ρ (default 0.1)")
    p.add_argument("--text-tokens", default=TEXT_TOKENS,
                   help=f"long fields cut to this many tokens, per task (default {TEXT_TOKENS})")  # fmt: skip
    p.add_argument("--max-new-tokens", type=int, default=10, help="generated tokens per example (default 10)")
    p.add_argument("--label-match", default="restricted", help="accuracy from 'restricted' (default) or 'first_token'")
    p.add_argument("--batch-size", type=int, default=64, help="perturbed inputs per forward (default 64)")
    p.add_argument("--shard-index", type=int, default=0)
    p.add_argument("--num-shards", type=int, default=1)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument(
        "--data-dir", default=None, help="task data folder (default: $GRADELLM_LENS_DATA, ./data, ../shared/data)"
    )
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    return p.parse_args(argv)


def protocol(args: argparse.Namespace) -> EvaluationConfig:
    """The shard's :class:`EvaluationConfig` but for ``n`` (per task): ``--preset``'s values under the
    options given explicitly; without a preset, the committed CPU verdict's 3 draws and 10 maps."""
    metrics = {"pis": parse_pis(args.pis), "batch_size": args.batch_size}
    if args.draws is not None or not args.preset:
        metrics["n_draws"] = 3 if args.draws is None else args.draws
    options = dict(
        perturb="user_text", min_rho=args.min_rho, shard_index=args.shard_index, num_shards=args.num_shards,
        progress=args.progress, **explicit_map_options(args.random_maps),
        **({} if args.controls is None else {"controls": parse_controls(args.controls)}),
    )  # fmt: skip
    return preset_config(args.preset, metrics=metrics, **options)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sizes = parse_task_counts(args.n, "--n")
        budgets = parse_task_counts(args.text_tokens, "--text-tokens")
        run = protocol(args)
        specs = parse_method_specs(args.methods)  # name errors before the model loads
        common = {"data_dir": args.data_dir, "prompt_format": args.prompt_format, "label_match": args.label_match,
                  "max_new_tokens": args.max_new_tokens}  # fmt: skip
        tasks = {task: make_verdict_task(task, budgets, **common) for task in sizes}
        model = load_model(args.model, device=args.device)
        for task_name, task in tasks.items():
            config = replace(run, n=sizes[task_name])
            path = results_path(args.out / task_name, args.shard_index, args.num_shards)
            start = time.perf_counter()
            report = run_evaluation(model, task, specs, path, config)
            print(
                f"{args.model} {task_name} shard {args.shard_index}/{args.num_shards}: {report.written} new, "
                f"{report.failed} failed, {report.skipped} already done, {time.perf_counter() - start:.0f} s -> {path}",
                flush=True,
            )
    except (LensError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
