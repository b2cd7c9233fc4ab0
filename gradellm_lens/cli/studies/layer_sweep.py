"""Study (b): Grad-ELLM faithfulness (π-Soft-NS/NC AUC) vs layer selection and variant switches.

Every configuration attributes the same examples and is scored with
``gradellm_lens.metrics.evaluate_step`` (π-Soft-NS / π-Soft-NC normalised AUC over ``--pis``, plain
Soft-NS/NC alongside).
Perturbable positions (``--perturb``): ``user_text`` (default: the review / story tokens; template,
chat markup and system prompt are kept) or ``all`` (every prefix position but BOS: on SmolLM2 with
the chat template this saturates, π-Soft-NS ≈ 0 and π-Soft-NC ≈ 1 for every method, because
masking the chat markup alone destroys the answer). The mask draws depend only on the prefix and target, so all configurations of an example are
scored with the same random masks: the ``Δ`` columns are *paired* differences to the default.

Configurations (relative to the default: last layer, ``pre_o`` gradient, loosened attention,
grouped GQA, ReLU per layer):

* how many layers: last K for K ∈ {1 (default), 2, 4, 8, all};
* which single layer: 0, n/4, n/2, 3n/4 (SmolLM2: 0, 7, 15, 22; the last layer is K=1);
* one switch at a time: ``gradient_source=post_o``; ``spatial`` ∈ {softmax, pattern, rope_minmax,
  none}; ``kv_expansion=legacy_repeat``; the released code's ``reference`` variant; ``combine=
  sum_then_relu`` with all layers;
* the ``random`` method (chance level).

Run: ``gradellm-lens study layer_sweep`` (or ``python -m analyses.layer_sweep`` in a checkout).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ...methods import make_method
from ...metrics import FaithfulnessConfig, evaluate_step
from ...models import model_info
from ...progress import progress_bar
from . import common as study

DESCRIPTION = "pi-Soft faithfulness of Grad-ELLM vs layer selection and variant switches"
METRICS = ("auc_pi_ns", "auc_pi_nc", "soft_ns", "soft_nc")


def configurations(n_layers: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    """``(group, label, method, options)`` of every configuration; the first is the default."""
    out = [("layers", "K=1 (default)", "grad_ellm", {})]
    out += [("layers", f"K={k}", "grad_ellm", {"layers": k}) for k in (2, 4, 8) if k < n_layers]
    out.append(("layers", "K=all", "grad_ellm", {"layers": "all"}))
    depths = sorted({0, n_layers // 4, n_layers // 2, 3 * n_layers // 4} - {n_layers - 1})
    out += [("single layer", f"layer {d}", "grad_ellm", {"layers": [d]}) for d in depths]
    switches = [
        ("gradient_source=post_o", {"gradient_source": "post_o"}),
        *[(f"spatial={s}", {"spatial": s}) for s in ("softmax", "pattern", "rope_minmax", "none")],
        ("kv_expansion=legacy_repeat", {"kv_expansion": "legacy_repeat"}),
        ("variant=reference", {"variant": "reference"}),
        ("K=all, sum_then_relu", {"layers": "all", "combine": "sum_then_relu"}),
    ]
    out += [("switch", label, "grad_ellm", options) for label, options in switches]
    out.append(("baseline", "random", "random", {}))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = study.make_parser("layer_sweep", DESCRIPTION, n=8)
    p.add_argument("--pis", default="0.1,0.3,0.5,0.7,0.9", help="comma-separated π grid")
    p.add_argument("--n-draws", type=int, default=1, help="Bernoulli mask draws per keep vector")
    p.add_argument("--batch-size", type=int, default=32, help="perturbed inputs per forward pass")
    p.add_argument("--perturb", default="user_text", choices=["user_text", "all"], help="perturbable positions")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    timer = study.Timer()
    model = study.setup(args)
    config = FaithfulnessConfig(
        pis=tuple(float(x) for x in args.pis.split(",")), n_draws=args.n_draws, batch_size=args.batch_size
    )
    _, examples = study.load_study_examples(model, args)
    configs = configurations(model_info(model).n_layers)
    methods = [make_method(name, model, **options) for _, _, name, options in configs]
    scores = np.full((len(configs), len(examples), len(METRICS)), np.nan)  # step-averaged per example
    n_degenerate = 0
    for e, ex in enumerate(progress_bar(examples, desc=f"layer_sweep {args.task}", unit="example")):
        for c, method in enumerate(methods):
            out = method.attribute(ex.tokens, list(ex.steps))
            per_step = []
            for t, step in enumerate(ex.steps):
                prefix = ex.tokens[: step.position + 1]
                mask = ex.user_mask[: step.position + 1] if args.perturb == "user_text" else None
                result = evaluate_step(
                    model, prefix, step.target, out.scores[t, : step.position + 1], perturbable=mask, config=config
                )
                n_degenerate += result.degenerate and c == 0
                if not result.degenerate:
                    per_step.append([getattr(result, m) for m in METRICS])
            if per_step:
                scores[c, e] = np.mean(per_step, axis=0)
    rows = []
    for c, (group, label, _, options) in enumerate(configs):
        row: dict[str, Any] = {"group": group, "config": label}
        for m, metric in enumerate(METRICS):
            row[metric], row[f"{metric}_sem"] = study.mean_sem(scores[c, :, m].tolist())
            if metric.startswith("auc"):
                row[f"d_{metric}"], row[f"d_{metric}_sem"] = study.mean_sem(
                    (scores[c, :, m] - scores[0, :, m]).tolist()
                )
        rows.append(row)
    name = study.stem(args, "layer_sweep")
    caption = (f"{args.model}, task {args.task}, objective {args.objective}, {len(examples)} examples "
               f"({n_degenerate} degenerate steps dropped), perturb {args.perturb}, pis {list(config.pis)}, "
               f"n_draws {config.n_draws}; "
               f"d_* = paired difference to K=1 (default); {timer}")  # fmt: skip
    study.write_table(rows, args.out, name, title=f"Grad-ELLM faithfulness by layer selection and variant ({caption})")
    plt = study.pyplot()
    fig, ax = plt.subplots(figsize=(12, 4.5))
    x = np.arange(len(rows))
    for offset, metric in ((-0.2, "auc_pi_ns"), (0.2, "auc_pi_nc")):
        ax.bar(
            x + offset, [r[metric] for r in rows], 0.4, yerr=[r[f"{metric}_sem"] for r in rows], label=metric, capsize=2
        )
    ax.set_xticks(x, [r["config"] for r in rows], rotation=60, ha="right")
    ax.set(ylabel="normalised AUC (higher = more faithful)", title=f"Grad-ELLM on {args.task}: layers and variants")
    ax.legend()
    print(f"wrote {study.save_figure(fig, args.out, name)} ({timer})")
    for row in rows:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if not k.endswith("sem")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
