"""Study (c): does Grad-ELLM's head importance agree with the true effect of ablating each head?

For each example, every query head (SmolLM2: 30 layers x 9 heads = 270) is zero-ablated *alone*
(one batch row per head, ``single_head_effects``) and the drop of the explained score (target
logit, mean over steps) is its ground-truth importance. Every scorer is compared with it by
Spearman's ρ, Kendall's τ-b and the overlap of the top-10 heads:

* Grad-ELLM head importance (``GradEllm(layers="all")``) under each measure: ``positive``
  (Σ_i ReLU c), ``net_abs`` (|Σ_i c|), ``net`` (Σ_i c) and ``abs`` (Σ_i |c|);
* the output-norm baseline ‖z_h W_O^h‖ at the explained position(s).

Comparisons are made against the signed drop (``truth=drop``) and its magnitude (``abs_drop``: a
head whose removal *raises* the target also matters), per example (mean ± s.e.m. over examples)
and pooled (per-example scores normalised by Σ|·| and averaged, then correlated once). With
``--kv`` the same is done per KV group: each of the 3 KV heads per layer is zero-ablated through
``hook_k``/``hook_v`` (90 ablations) and compared with the query-head importance summed over its
group (``HeadImportance.to_kv_groups``).

Run: ``gradellm-lens study head_agreement`` (or ``python -m analyses.head_agreement`` in a checkout).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from ...analysis import (
    Ablation,
    HeadImportance,
    ablation_effects,
    dataset_head_importance,
    head_importance,
    output_norm_importance,
    rank_agreement,
    single_head_effects,
)
from ...analysis.importance import IMPORTANCE_MEASURES
from ...methods import GradEllm
from ...models import model_info
from ...progress import progress_bar
from . import common as study

DESCRIPTION = "rank agreement between Grad-ELLM head importance and single-head zero-ablation effects"


def build_parser() -> argparse.ArgumentParser:
    p = study.make_parser("head_agreement", DESCRIPTION, n=6)
    p.add_argument("--layers", default=None, help="comma-separated layers to sweep (none: all)")
    p.add_argument("--kv", action=argparse.BooleanOptionalAction, default=True, help="also compare per KV group")
    p.add_argument("--top-k", type=int, default=10, help="k of the top-k overlap (KV level: k / group size)")
    p.add_argument("--batch-size", type=int, default=27, help="ablations per forward pass")
    return p


def kv_effects(model, ex, layers, batch_size) -> HeadImportance:
    """Drop of zero-ablating each KV head (k and v) alone, as a per-KV-group importance."""
    info = model_info(model)
    heads = [(layer, g) for layer in layers for g in range(info.n_kv_heads)]
    effects = ablation_effects(model, ex.tokens, list(ex.steps), [Ablation(kind="kv_heads", heads=[h]) for h in heads],
                               batch_size=batch_size)  # fmt: skip
    drops = np.array([e.score_drop for e in effects], dtype=np.float32).reshape(len(layers), info.n_kv_heads)
    return HeadImportance(drops, tuple(layers), "zero_kv_ablation_drop", unit="kv")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    timer = study.Timer()
    model = study.setup(args)
    info = model_info(model)
    layers = list(range(info.n_layers)) if args.layers is None else [int(x) for x in args.layers.split(",")]
    _, examples = study.load_study_examples(model, args)
    scorers = defaultdict(list)  # (level, scorer) -> per-example HeadImportance
    truths = defaultdict(list)  # level -> per-example truth
    for ex in progress_bar(examples, desc=f"head_agreement {args.task}", unit="example"):
        out = GradEllm(model, layers=layers).attribute(ex.tokens, list(ex.steps))
        per_scorer = {f"grad_ellm:{m}": head_importance(out, m) for m in IMPORTANCE_MEASURES}
        norms = output_norm_importance(model, ex.tokens, ex.positions)
        per_scorer["output_norm"] = HeadImportance(norms.scores[layers], tuple(layers), norms.measure)
        truths["query"].append(
            single_head_effects(model, ex.tokens, list(ex.steps), layers=layers, batch_size=args.batch_size)
        )
        for name, imp in per_scorer.items():
            scorers["query", name].append(imp)
        if args.kv:
            truths["kv"].append(kv_effects(model, ex, layers, args.batch_size))
            for name, imp in per_scorer.items():
                scorers["kv", name].append(imp.to_kv_groups(info.n_kv_heads, "sum"))
    rows = []
    for (level, name), items in scorers.items():
        k = args.top_k if level == "query" else max(1, args.top_k * info.n_kv_heads // info.n_heads)
        for truth_kind, transform in (("drop", lambda t: t), ("abs_drop", HeadImportance.magnitude)):
            truth = [transform(t) for t in truths[level]]
            per_ex = [rank_agreement(s, t, k=k) for s, t in zip(items, truth)]
            pooled = rank_agreement(dataset_head_importance(items), dataset_head_importance(truth), k=k)
            rho, tau, top = (study.mean_sem([getattr(a, f) for a in per_ex]) for f in ("spearman", "kendall", "top_k"))
            rows.append({"level": level, "scorer": name, "truth": truth_kind, "n_units": per_ex[0].n,
                         "spearman": rho[0], "spearman_sem": rho[1], "kendall": tau[0], "kendall_sem": tau[1],
                         "k": per_ex[0].k, "top_k_overlap": top[0], "pooled_spearman": pooled.spearman,
                         "pooled_kendall": pooled.kendall, "pooled_top_k_overlap": pooled.top_k})  # fmt: skip
    name = study.stem(args, "head_agreement")
    caption = (f"{args.model}, task {args.task}, objective {args.objective}, {len(examples)} examples, layers {layers[0]}..{layers[-1]}, "
               f"zero ablation of single heads; {timer}")  # fmt: skip
    study.write_table(rows, args.out, name, title=f"Grad-ELLM head importance vs single-head ablation ({caption})")
    pooled_imp = dataset_head_importance(scorers["query", "grad_ellm:positive"])
    pooled_truth = dataset_head_importance(truths["query"])
    plt = study.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), constrained_layout=True)
    bound = float(pooled_truth.scores.abs().max())  # signed drop: white at 0
    panels = (
        (pooled_imp, "Grad-ELLM importance (positive)", {"cmap": "viridis"}),
        (pooled_truth, "zero-ablation drop", {"cmap": "coolwarm", "vmin": -bound, "vmax": bound}),
    )
    for ax, (imp, title, style) in zip(axes, panels):
        im = ax.imshow(imp.scores.numpy(), aspect="auto", **style)
        ax.set(title=title, xlabel="head", ylabel="layer", yticks=range(0, len(layers), 5),
               yticklabels=[layers[i] for i in range(0, len(layers), 5)])  # fmt: skip
        fig.colorbar(im, ax=ax)
    axes[2].scatter(pooled_imp.values.numpy(), pooled_truth.values.numpy(), s=10)
    agree = rank_agreement(pooled_imp, pooled_truth)
    axes[2].set(xlabel="Grad-ELLM importance (pooled)", ylabel="ablation drop (pooled)",
                title=f"ρ = {agree.spearman:.2f}, τ = {agree.kendall:.2f}")  # fmt: skip
    print(f"wrote {study.save_figure(fig, args.out, name)} ({timer})")
    for row in rows:
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
