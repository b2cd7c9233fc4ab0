"""Study (a): do the heads Grad-ELLM ranks high matter more? Cumulative head-ablation curves.

For each example, every query head of every layer (SmolLM2: 30 x 9 = 270) is ranked three ways:

* ``grad_ellm``: Grad-ELLM head importance of that example (``GradEllm(layers="all")``, measure
  ``--measure``, default ``positive`` = Σ_i ReLU(c_{l,h,i}), mean over the example's steps);
* ``output_norm``: ‖z_{l,p,h} W_O^{l,h}‖ at the explained position(s) (how much the head writes,
  ignoring the target);
* ``random``: ``--random-seeds`` seeded random orders (per example).

The top-k heads of each order are ablated together (``--mode``: zero, or mean over a disjoint
reference set of ``--n-ref`` prompts of the same task) for k in 0, 1, 2, 4, ..., 256, 270, and the
drop of the explained score (mean target logit over the steps) is recorded, with the drop in target
probability and, for classification, the accuracy of the restricted label choice. Each curve is
summarised by its AUC over the fraction of heads ablated (``auc``) and over log2(1 + k) /
log2(1 + N) (``auc_log``, which weights the first heads as much as the last ones). For generation
tasks, ``--generate-k`` heads of each order are also ablated during greedy generation and the
token agreement with the clean continuation is reported.

Run: ``gradellm-lens study head_curves --task sst2`` / ``--task tellmewhy`` (or
``python -m analyses.head_curves ...`` in a checkout).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from ...analysis import (
    Ablation,
    ablated_continuation,
    ablation_effects,
    collect_reference,
    continuation_agreement,
    cumulative_ablations,
    curve_auc,
    default_counts,
    grad_ellm_head_importance,
    output_norm_importance,
    random_head_order,
)
from ...models import model_info
from ...progress import progress_bar
from . import common as study

DESCRIPTION = "cumulative head ablation in Grad-ELLM / output-norm / random order (logit-drop curves, AUC)"


def build_parser() -> argparse.ArgumentParser:
    p = study.make_parser("head_curves", DESCRIPTION, n=16)
    p.add_argument("--measure", default="positive", help="Grad-ELLM importance measure (positive, net_abs, net, abs)")
    p.add_argument("--mode", default="zero", choices=["zero", "mean"], help="ablation mode")
    p.add_argument(
        "--n-ref", type=int, default=8, help="reference prompts for --mode mean (disjoint from the examples)"
    )
    p.add_argument("--random-seeds", type=int, default=3, help="number of random orders per example")
    p.add_argument(
        "--generate-k", type=int, default=16, help="generation tasks: heads ablated during generation (0: skip)"
    )
    p.add_argument("--batch-size", type=int, default=24, help="ablations per forward pass")
    return p


def log_axis(counts, n_total: int) -> list[float]:
    return [math.log2(1 + k) / math.log2(1 + n_total) for k in counts]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    timer = study.Timer()
    model = study.setup(args)
    task, examples = study.load_study_examples(model, args)
    reference = None
    if args.mode == "mean":
        _, ref_examples = study.load_examples(
            model,
            args.task,
            args.n_ref,
            seed=args.seed,
            max_new_tokens=1,
            skip=args.n,
            prompt_format=args.prompt_format,
            data_dir=args.data_dir,
        )
        reference = collect_reference(model, [e.tokens[: e.prompt_length] for e in ref_examples], hooks=("z",))
    info = model_info(model)
    n_total = info.n_layers * info.n_heads
    counts = default_counts(n_total)
    classification, generate = examples[0].label is not None, task.kind == "generation" and args.generate_k > 0
    groups = {"grad_ellm": 1, "output_norm": 1, "random": args.random_seeds}
    # per group: [example, order of the group, ...] arrays
    drops = {g: np.zeros((len(examples), n, len(counts))) for g, n in groups.items()}
    prob_drops = {g: np.zeros_like(a) for g, a in drops.items()}
    correct = {g: np.zeros_like(a) for g, a in drops.items()}
    agreement = {g: np.zeros(a.shape[:2]) for g, a in drops.items()}
    for i, ex in enumerate(progress_bar(examples, desc=f"head_curves {args.task}", unit="example")):
        orders = [
            ("grad_ellm", 0, grad_ellm_head_importance(model, ex.tokens, ex.steps, args.measure).ranking()),
            ("output_norm", 0, output_norm_importance(model, ex.tokens, ex.positions).ranking()),
        ]
        orders += [
            ("random", s, random_head_order(info.n_layers, info.n_heads, seed=10_007 * s + i))
            for s in range(args.random_seeds)
        ]
        ablations = [
            a for *_, order in orders for a in cumulative_ablations(order, counts, mode=args.mode, reference=reference)
        ]
        effects = ablation_effects(
            model, ex.tokens, ex.steps, ablations, choices=ex.choices, batch_size=args.batch_size
        )
        for j, (group, s, order) in enumerate(orders):
            chunk = effects[j * len(counts) : (j + 1) * len(counts)]
            drops[group][i, s] = [e.score_drop for e in chunk]
            prob_drops[group][i, s] = [e.prob_drop for e in chunk]
            if classification:
                correct[group][i, s] = [e.ablated_choice == ex.label for e in chunk]
            if generate:
                clean = ex.tokens[ex.prompt_length :]
                ablation = Ablation(heads=order[: args.generate_k], mode=args.mode, reference=reference)
                new = ablated_continuation(
                    model, ex.tokens[: ex.prompt_length], ablation, len(clean), stop_at_eos=False
                )
                agreement[group][i, s] = continuation_agreement(clean, new)
    fractions, log_fractions = [k / n_total for k in counts], log_axis(counts, n_total)
    points, summary = [], []
    for group, n_orders in groups.items():
        curve = drops[group].mean(axis=1)  # [example, count]: random orders averaged per example
        for p, k in enumerate(counts):
            drop = study.mean_sem(curve[:, p])
            row = {"order": group, "k": k, "fraction": fractions[p], "logit_drop": drop[0], "logit_drop_sem": drop[1],
                   "prob_drop": study.mean_sem(prob_drops[group].mean(axis=1)[:, p])[0]}  # fmt: skip
            if classification:
                row["accuracy"] = study.mean_sem(correct[group].mean(axis=1)[:, p])[0]
            points.append(row)
        auc = study.mean_sem([curve_auc(fractions, c) for c in curve])
        auc_log = study.mean_sem([curve_auc(log_fractions, c) for c in curve])
        row = {"order": group, "n_orders": n_orders, "auc": auc[0], "auc_sem": auc[1], "auc_log": auc_log[0],
               "auc_log_sem": auc_log[1],
               "auc_prob": study.mean_sem([curve_auc(fractions, c) for c in prob_drops[group].mean(axis=1)])[0],
               "drop_at_8": study.mean_sem(curve[:, counts.index(8)])[0]}  # fmt: skip
        if generate:
            row[f"gen_agreement_at_{args.generate_k}"] = study.mean_sem(agreement[group].mean(axis=1))[0]
        summary.append(row)
    name = study.stem(args, "head_curves", args.mode)
    caption = (f"{args.model}, task {args.task}, objective {args.objective}, {len(examples)} examples, "
               f"{args.mode} ablation, Grad-ELLM measure {args.measure}, {args.random_seeds} random orders; {timer}")  # fmt: skip
    study.write_table(points, args.out, f"{name}_points", title=f"Cumulative ablation curves ({caption})")
    study.write_table(summary, args.out, f"{name}_auc", title=f"Curve AUC, mean over examples ({caption})")
    plt = study.pyplot()
    fig, axes = plt.subplots(1, 2 if classification else 1, figsize=(11 if classification else 6, 4), squeeze=False)
    for group in groups:
        rows = [r for r in points if r["order"] == group]
        y, err = np.array([r["logit_drop"] for r in rows]), np.array([r["logit_drop_sem"] for r in rows])
        axes[0, 0].plot(counts, y, marker="o", label=group)
        axes[0, 0].fill_between(counts, y - err, y + err, alpha=0.2)
        if classification:
            axes[0, 1].plot(counts, [r["accuracy"] for r in rows], marker="o", label=group)
    axes[0, 0].set(xscale="symlog", xlabel="heads ablated (k)", ylabel=f"target {args.objective} drop",
                   title=f"{args.task}: {args.mode} ablation, {len(examples)} examples")  # fmt: skip
    axes[0, 0].legend()
    if classification:
        axes[0, 1].set(xscale="symlog", xlabel="heads ablated (k)", ylabel="accuracy (label choice)", title="accuracy")
    print(f"wrote {study.save_figure(fig, args.out, name)} ({timer})")
    for row in summary:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
