"""CI half-width per CPU-second: the old defaults against a preset, on the same examples, in one process.

Both configurations evaluate the same methods on the same examples, interleaved example by example
(``run_evaluation`` resumes, so ``n = 1, 2, …`` adds one example to each run in turn, and a change
of machine load falls on both alike). For each configuration the table gives the process CPU
seconds it spent (``time.process_time``, one thread), the paired difference ``method − random`` of
the π-Soft AUCs with its bootstrap 95% CI over the examples (:func:`~gradellm_lens.evaluation.paired_bootstrap_ci`,
as the summaries compute it) and the half-width *projected to one CPU-hour*,
``half-width · √(CPU s / 3600)``: a CI narrows as one over the square root of the examples, and
the examples a budget buys grow linearly with it, so this is the half-width a CPU-hour would buy
(smaller is better). With a few examples the half-widths themselves are noisy; the CPU time per
example is not::

    OMP_NUM_THREADS=1 python benchmarks/ci_per_second.py --n 6 --preset standard \\
        --out benchmarks/results/ci-per-second.md
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from gradellm_lens import load_model
from gradellm_lens.evaluation import EvaluationConfig, paired_bootstrap_ci, read_results, run_evaluation
from gradellm_lens.evaluation.runner import preset_config
from gradellm_lens.tasks import make_task

METRICS = ("auc_pi_ns", "auc_pi_nc")


def per_example(path: Path, method: str, metric: str) -> dict[str, float]:
    _headers, records, _partial = read_results(path)
    return {r["example_id"]: r["mean"][metric] for r in records if r["method"] == method and r["status"] == "ok"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--task", default="sst2")
    p.add_argument("--method", default="grad_ellm")
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--preset", default="standard")
    p.add_argument("--out", default=None, help="also write the table (Markdown) here")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    model = load_model(args.model, device="cpu")
    task = make_task(args.task, family="evaluation", label_match="restricted")
    configs = {
        "old defaults": lambda n: EvaluationConfig(n=n, progress=False),
        f"preset {args.preset}": lambda n: preset_config(args.preset, n=n, progress=False),
    }
    methods = f"{args.method},random"
    cpu = dict.fromkeys(configs, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {label: Path(tmp) / f"{i}" / "results.jsonl" for i, label in enumerate(configs)}
        for n in range(1, args.n + 1):
            for label, make in configs.items():
                start = time.process_time()
                run_evaluation(model, task, methods, paths[label], make(n))
                cpu[label] += time.process_time() - start
        rows = []
        for label, make in configs.items():
            config = make(args.n)
            m = config.metrics
            setting = (f"D={m.n_draws}, π points={len(m.pis)}, K={config.random_maps}"
                       f"{' antithetic' if config.antithetic else ''}, controls={'+'.join(config.controls) or 'none'}")  # fmt: skip
            for metric in METRICS:
                est = paired_bootstrap_ci(
                    per_example(paths[label], args.method, metric), per_example(paths[label], "random", metric)
                )
                if est is None or est.low is None:
                    continue
                half = (est.high - est.low) / 2
                n_ok = len(per_example(paths[label], args.method, metric))
                rows.append(
                    f"| {label} | {setting} | {metric} | {n_ok} | {cpu[label]:.0f} | {cpu[label] / args.n:.1f} | "
                    f"{est.mean:+.4f} [{est.low:+.4f}, {est.high:+.4f}] | {half:.4f} | "
                    f"{half * math.sqrt(cpu[label] / 3600):.4f} |"
                )
    table = [
        (
            f"CI half-width per CPU-second: {args.model}, {args.task} (first {args.n} examples of the seeded order), "
            f"Δ = {args.method} − random, one thread, both configurations interleaved in one process."
        ),
        "",
        (
            "| configuration | setting | metric | n (ok) | CPU s | CPU s / example | Δ [95% CI] | half-width |"
            " half-width after 1 CPU-h |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    text = "\n".join(table)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
