"""The Grad-ELLM switch study: which layers and switches make its maps faithful, and why the last layer fails.

Subcommands (run from the repository root; ``analyses/run_grad_ellm_study.sh`` runs them in order)::

    python analyses/grad_ellm_study.py methods --model qwen2.5-coder-0.5b-instruct [--per-layer]
    python analyses/grad_ellm_study.py tables analyses/results/grad-ellm-study

``methods`` prints the comma-separated method specs that the faithfulness runner evaluates for one model:

* ``layers``: the last K layers for K in 1, 2, 4, 8, half the layers and all of them
  (``relu_then_sum``: the per-layer maps are ReLU'd, then summed);
* every single layer (``--per-layer``): ``layers=[i]`` for each i but the last (which is K = 1);
* the switches, one at a time from ``layers=all``: ``combine=sum_then_relu``,
  ``gradient_source=post_o``, ``kv_expansion=legacy_repeat``, each non-default ``spatial``, and
  the released code's pair of switches (``:reference``) over all layers;
* the released code as it is (``grad_ellm:reference``, last layer) and ``random``;
* ``--combine sum_then_relu``: the second round, the same sets from the first round's best configuration
  (all layers, per-layer maps summed before the ReLU, as in Grad-ECLIP's text branch).

Every spec names its options explicitly, so the results do not depend on the package's default.
The faithfulness protocol is the verdict's (Zhao & Aletras 2023's Soft-NS/NC at a fixed retaining
probability π, arXiv 2601.03089), with the switches in :mod:`gradellm_lens.methods.grad_ellm`.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path
from typing import Any

SWITCHES = (
    "gradient_source=post_o",
    "kv_expansion=legacy_repeat",
    "spatial=softmax",
    "spatial=pattern",
    "spatial=rope_minmax",
    "spatial=none",
)


def layer_counts(n_layers: int) -> list[int | str]:
    """K for the last-K configurations: 1, 2, 4, 8 and half the layers (where fewer than all), then ``all``."""
    ks = sorted({k for k in (1, 2, 4, 8, n_layers // 2) if k < n_layers})
    return [*ks, "all"]


def study_methods(n_layers: int, per_layer: bool, combine: str = "relu_then_sum", baselines: bool = False) -> list[str]:
    """The method specs of the study for a model with ``n_layers`` attention layers.

    ``combine="relu_then_sum"`` (the first round): last K layers, the switches from all layers, the released
    code, every single layer (``per_layer``) and random. ``combine="sum_then_relu"`` (the second round, from
    the first round's best configuration): the same last-K and switch sets with the per-layer maps summed before
    the ReLU (a single layer is the same map either way, so K = 1 and the single layers are not repeated);
    ``baselines`` adds the first round's last layer and all layers, and the released code, for a run that has
    only the second round. Every spec names ``combine``, so no result depends on the package's default.
    """
    first = combine == "relu_then_sum"
    suffix = f"+combine={combine}"
    specs = [f"grad_ellm+layers={k}{suffix}" for k in layer_counts(n_layers) if first or k != 1]
    specs += [f"grad_ellm+layers=all{suffix}+{switch}" for switch in SWITCHES]
    if first:  # combine, the switch the second round starts from
        specs += ["grad_ellm+layers=all+combine=sum_then_relu"]
    specs += [f"grad_ellm:reference+layers=all{suffix}"]
    if first or baselines:
        specs += ["grad_ellm:reference+layers=1"]
    if baselines and not first:
        specs += [f"grad_ellm+layers={k}+combine=relu_then_sum" for k in (1, "all")]
    if per_layer and first:  # the last layer alone is layers=1 above
        specs += [f"grad_ellm+layers=[{i}]{suffix}" for i in range(n_layers - 1)]
    return [*specs, "random"]


def canonical(label: str) -> str:
    """The label the tables show: ``combine`` only where it is ``sum_then_relu`` (without it, each layer's map
    is ReLU'd, then summed: the first round, run under the 0.2 default, whose specs did not name it)."""
    return label.replace("+combine=relu_then_sum", "")


METRICS = {"auc_pi_ns": "π-Soft-NS AUC", "auc_pi_nc": "π-Soft-NC AUC"}
ALL = "grad_ellm+layers=all"
DEFAULT = "grad_ellm+layers=all+combine=sum_then_relu"
"""This package's default configuration (every layer, the maps summed before the ReLU)."""
SINGLE = re.compile(r"^grad_ellm\+layers=\[(\d+)\]$")
LAST_K = re.compile(r"^grad_ellm\+layers=(\d+|all)$")
LAST_K2 = re.compile(r"^grad_ellm\+layers=(\d+|all)\+combine=sum_then_relu$")


def load_runs(out: Path) -> dict[tuple[str, str], Any]:
    """``{(model, task): Summary}`` for every ``<out>/<model>/<task>`` folder with results, under the
    :func:`canonical` labels (the files are read through relabelled copies; fingerprints do not involve labels)."""
    import atexit
    import json
    import shutil
    import tempfile

    from gradellm_lens.evaluation import summarize
    from gradellm_lens.evaluation.store import results_files

    runs = {}
    tmp = tempfile.mkdtemp(prefix="grad-ellm-study-")  # kept until exit: the summaries name these files
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    for folder in sorted(p for p in out.glob("*/*") if p.is_dir()):
        copies = []
        for i, path in enumerate(results_files(folder)):
            lines = []
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if record.get("kind") == "header":
                    record["methods"] = {canonical(k): v for k, v in record["methods"].items()}
                elif "method" in record:
                    record["method"] = canonical(record["method"])
                lines.append(json.dumps(record, ensure_ascii=False))
            copies.append(Path(tmp) / f"{folder.parent.name}-{folder.name}-{i}.jsonl")
            copies[-1].write_text("\n".join(lines) + "\n", encoding="utf-8")
        if copies:
            runs[(folder.parent.name, folder.name)] = summarize(copies)
    return runs


def n_layers_of(summary) -> int:
    """The model's layer count, from the files' header: the most layers any configuration used."""
    from gradellm_lens.evaluation.store import read_results

    headers, _, _ = read_results(summary.files[0])
    return max(len(m["config"].get("layers") or []) for h in headers for m in h["methods"].values())


def single_layer(label: str) -> int | None:
    match = SINGLE.match(label)
    return int(match.group(1)) if match else None


def layer_of(label: str, n_layers: int) -> int | None:
    """The one layer a configuration uses (``layers=[i]``, or the last layer for ``layers=1``)."""
    if label == "grad_ellm+layers=1":  # K = 1
        return n_layers - 1
    return single_layer(label)


def delta(summary, a: str, b: str, key: str):
    """The paired difference ``a - b`` (the summary holds each pair once, in row order: else ``-(b - a)``)."""
    from gradellm_lens.evaluation.statistics import Estimate

    comparison = summary.comparison(a, b)
    if comparison is not None:
        return comparison.deltas.get(key)
    reverse = summary.comparison(b, a)
    e = None if reverse is None else reverse.deltas.get(key)
    return None if e is None else Estimate(-e.mean, -e.high, -e.low, e.n)


def cell(estimate) -> str:
    if estimate is None:
        return "–"
    return estimate.format() + (" *" if estimate.excludes_zero() else "")


def passes(summary, label: str) -> dict[str, bool]:
    """Whether ``label`` beats random and its shuffled control (CI above 0) on each metric."""
    out = {}
    for key in METRICS:
        for other, name in (("random", "random"), (f"{label} [shuffled]", "shuffled")):
            e = delta(summary, label, other, key)
            out[f"{key}>{name}"] = e is not None and e.has_ci and e.low > 0
    return out


def config_rows(summary, labels: list[str], base: str | None = None) -> list[str]:
    """Markdown rows: AUC, Δ vs random, Δ vs own shuffled (and Δ vs ``base``) for each metric."""
    rows = []
    for label in labels:
        cells = [f"`{label}`"]
        for key in METRICS:
            cells.append(f"{summary.row(label).metrics[key].mean:.3f}")
            if base is not None:
                cells.append("–" if label == base else cell(delta(summary, label, base, key)))
            cells += [cell(delta(summary, label, "random", key)), cell(delta(summary, label, f"{label} [shuffled]", key))]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def table_head(base: str | None) -> list[str]:
    cols = ["configuration"]
    for name in ("NS", "NC"):
        cols += [f"π-Soft-{name} AUC"] + ([f"− `{base}`"] if base else []) + ["− random", "− shuffled"]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def protocol_line(summary) -> str:
    random = summary.row("random")
    p = summary.protocol
    rho = f", median ρ {p.median_rho:.2f}" if p is not None and p.median_rho is not None else ""
    return (
        f"{summary.n_examples} examples, {random.n_ok} with a well-conditioned step (the n of the paired CIs)"
        f"{rho}; random {random.metrics['auc_pi_ns'].mean:.3f} NS / {random.metrics['auc_pi_nc'].mean:.3f} NC."
    )


def write_tables(out: Path) -> list[Path]:
    """``study.md`` (every table), ``configs.csv`` and ``per_layer.csv`` in ``out``, and the figure."""
    runs = load_runs(out)
    if not runs:
        raise SystemExit(f"no results under {out}/<model>/<task>/")
    lines = ["# Grad-ELLM switch study: tables", "",
             "Written by `python analyses/grad_ellm_study.py tables " + str(out) + "` from the runs of "
             "`analyses/run_grad_ellm_study.sh`. Each cell: mean AUC, or the paired difference [95% bootstrap CI "
             "over examples]; `*`: the CI excludes 0. `− shuffled`: against the configuration's own scores "
             "randomly permuted over the user text.", ""]  # fmt: skip
    config_csv, layer_csv = [], []
    for (model, task), summary in runs.items():
        n = n_layers_of(summary)
        labels = [m.label for m in summary.methods if m.control is None and m.label != "random"]
        ks = [lab for lab in labels if LAST_K.match(lab)]
        ks2 = [lab for lab in labels if LAST_K2.match(lab) and lab != DEFAULT]
        second = [lab for lab in labels if "+combine=sum_then_relu+" in lab or lab.startswith("grad_ellm:reference+layers=all+combine=")]
        switches = [lab for lab in labels if (lab.startswith(ALL + "+") or lab.startswith("grad_ellm:reference"))
                    and lab not in second and lab != DEFAULT]  # fmt: skip
        lines += [f"## {model}, {task}", "", protocol_line(summary), ""]
        if ALL in labels:
            lines += ["**Last K layers** (ReLU per layer, then sum):", ""]
            lines += table_head(ALL) + config_rows(summary, ks, base=ALL) + [""]
            lines += [f"**Switches, one at a time from `{ALL}`**, and the released code:", ""]
            lines += table_head(ALL) + config_rows(summary, [ALL, *([DEFAULT] if DEFAULT in labels else []), *switches], base=ALL) + [""]
        if DEFAULT in labels and (ks2 or second):
            lines += [f"**From the default, `{DEFAULT}`** (the second round: last K layers and the switches, one at a time):", ""]
            lines += table_head(DEFAULT) + config_rows(summary, [DEFAULT, *ks2, *second], base=DEFAULT) + [""]
        singles = sorted((lab for lab in labels if layer_of(lab, n) is not None), key=lambda lab: layer_of(lab, n))
        if len(singles) > 1:
            lines += [f"**Each layer alone** ({len(singles)} of {n} layers):", ""]
            lines += table_head(None) + config_rows(summary, singles) + [""]
        for label in labels:
            row = summary.row(label)
            record = {"model": model, "task": task, "config": label, "layer": layer_of(label, n), "n": row.n_ok}
            for key in METRICS:
                e = row.metrics[key]
                record |= {key: e.mean, f"{key}_low": e.low, f"{key}_high": e.high}
                for other, name in (("random", "random"), (f"{label} [shuffled]", "shuffled")):
                    d = delta(summary, label, other, key)
                    record |= {f"{key}-{name}": d and d.mean, f"{key}-{name}_low": d and d.low,
                               f"{key}-{name}_high": d and d.high}  # fmt: skip
            record |= passes(summary, label)
            (layer_csv if record["layer"] is not None else config_csv).append(record)
    lines += decision_lines(runs)
    lines += predictor_lines(out, layer_csv)
    paths = [out / "study.md", out / "configs.csv", out / "per_layer.csv"]
    paths[0].write_text("\n".join(lines) + "\n", encoding="utf-8")
    for path, rows in zip(paths[1:], (config_csv, layer_csv)):
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    paths.append(plot_layers(runs, out / "auc_by_layer.png"))
    return paths


def decision_lines(runs: dict[tuple[str, str], Any]) -> list[str]:
    """Which configurations (run on every study run) beat random and their shuffled control on both metrics."""
    common = None
    for summary in runs.values():
        labels = {m.label for m in summary.methods if m.control is None and m.label != "random" and not SINGLE.match(m.label)}
        common = labels if common is None else common & labels
    names = [f"{m} {t}" for m, t in runs]
    lines = ["## Which configurations pass on every run", "",
             "A run passes when the paired CI of the configuration's AUC minus random's, and minus its own shuffled "
             "scores', lies above 0 on both π-Soft-NS and π-Soft-NC (four checks).", "",
             "| configuration | " + " | ".join(names) + " | runs passed | mean Δ vs random (NS, NC) |",
             "|---|" + "---|" * (len(names) + 2)]  # fmt: skip
    for label in sorted(common or ()):
        marks, dns, dnc = [], [], []
        for summary in runs.values():
            checks = passes(summary, label)
            marks.append(f"{sum(checks.values())}/4")
            dns.append(delta(summary, label, "random", "auc_pi_ns").mean)
            dnc.append(delta(summary, label, "random", "auc_pi_nc").mean)
        passed = sum(m == "4/4" for m in marks)
        lines.append(f"| `{label}` | " + " | ".join(marks) + f" | {passed}/{len(marks)} | "
                     f"{sum(dns) / len(dns):+.3f}, {sum(dnc) / len(dnc):+.3f} |")  # fmt: skip
    return [*lines, ""]


PREDICTORS = {"user": "share of the map on the text", "template": "share on the instruction",
              "user_zeroed": "text tokens the ReLU zeroes", "occlusion_rho": "ρ with occlusion"}  # fmt: skip


def predictor_lines(out: Path, layer_rows: list[dict[str, Any]]) -> list[str]:
    """Across layers, Spearman's ρ between each diagnosis statistic of a layer's map (``diagnose``'s CSV, spatial
    ``loosened``) and that layer's AUC on the same model's SST-2 run: what tells a faithful layer from another."""
    from gradellm_lens.analysis.correlation import spearman

    lines = ["## What tells a faithful layer from another", "",
             "Spearman's ρ across a model's layers between a statistic of the layer's map (from `diagnose`, the same "
             "SST-2 examples) and the layer's AUC (the *each layer alone* tables).", "",
             "| model | layers | " + " | ".join(f"{name}: {m}" for name in PREDICTORS.values() for m in ("NS", "NC")) + " |",
             "|---|---|" + "---|" * (2 * len(PREDICTORS))]  # fmt: skip
    for path in sorted(out.glob("diagnosis-*.csv")):
        model = path.stem.removeprefix("diagnosis-")
        with path.open(encoding="utf-8") as f:
            diag = {int(r["layer"]): r for r in csv.DictReader(f) if r["spatial"] == "loosened" and r["layer"].isdigit()}
        aucs = {r["layer"]: r for r in layer_rows if r["model"] == model and r["task"] == "sst2"}
        layers = sorted(set(diag) & set(aucs))
        if len(layers) < 3:
            continue
        cells = [f"{spearman([float(diag[i][stat]) for i in layers], [aucs[i][key] for i in layers]):+.2f}"
                 for stat in PREDICTORS for key in METRICS]  # fmt: skip
        lines.append(f"| {model} | {len(layers)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def plot_layers(runs: dict[tuple[str, str], Any], path: Path) -> Path:
    """AUC of each single layer's map against relative depth: one panel per metric, one line per model, with
    95% bootstrap bands, random's level (dashed) and the default all-layer map's (dotted)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    colours = iter(("#1f77b4", "#d62728", "#2ca02c", "#9467bd"))
    for (model, task), summary in runs.items():
        n = n_layers_of(summary)
        singles = sorted((layer_of(m.label, n), m) for m in summary.methods if m.control is None and layer_of(m.label, n) is not None)
        if len(singles) < 2:
            continue
        colour = next(colours)
        x = [layer / (n - 1) for layer, _ in singles]
        for ax, key in zip(axes, METRICS):
            est = [m.metrics[key] for _, m in singles]
            ax.plot(x, [e.mean for e in est], color=colour, marker="o", ms=3, label=f"{model} ({n} layers), {task}")
            ax.fill_between(x, [e.low for e in est], [e.high for e in est], color=colour, alpha=0.2, lw=0)
            present = {m.label for m in summary.methods}
            for label, style in (("random", "--"), (DEFAULT if DEFAULT in present else ALL, ":")):
                ax.axhline(summary.row(label).metrics[key].mean, color=colour, ls=style, lw=1)
    for ax, key in zip(axes, METRICS):
        ax.set_xlabel("layer / (layers − 1)   (0 = first layer, 1 = last)")
        ax.set_ylabel(f"{METRICS[key]} (higher is better)")
        ax.set_title(f"{METRICS[key]} of each single layer's map")
    axes[0].legend(fontsize=8, title="dashed: random; dotted: the default (all layers, summed, then ReLU)", title_fontsize=8)
    fig.savefig(path, dpi=150)
    return path


CATEGORIES = ("sink", "last", "special", "template", "user")
"""Prefix positions, in this order of precedence: position 0 (the attention sink), the explained last
position, other special tokens, the rest of the prompt template, and the dataset text."""


def position_categories(prompted, length: int, special_ids: set[int]) -> dict[str, Any]:
    """``{category: [length] bool mask}`` (disjoint, covering the prefix), see :data:`CATEGORIES`."""
    import torch

    ids = prompted.token_ids[:length] if prompted.length >= length else None
    user = prompted.user_mask(length)
    sink = torch.zeros(length, dtype=torch.bool)
    sink[0] = True
    last = torch.zeros(length, dtype=torch.bool)
    last[-1] = True
    special = torch.tensor([int(t) in special_ids for t in ids]) if ids is not None else torch.zeros_like(sink)
    special &= ~sink & ~last
    user &= ~sink & ~last & ~special
    template = ~(sink | last | special | user)
    return {"sink": sink, "last": last, "special": special, "template": template, "user": user}


def diagnose_example(model, task, example, spatial: str, occlusion=None) -> dict[str, Any]:
    """Per-layer score shares and ReLU statistics of the first explained step of one example; with
    ``occlusion`` (the signed leave-one-out drops of the same step), each layer's rank agreement with them
    over the user text."""
    import torch

    from gradellm_lens.analysis.correlation import spearman
    from gradellm_lens.attribute import build_steps, greedy_continuation
    from gradellm_lens.methods import GradEllm, make_method

    prompted = task.prompt(model, example)
    generated = greedy_continuation(model, prompted.token_ids, task.max_new_tokens)
    sequence = torch.cat([prompted.token_ids, generated])
    step = build_steps(prompted.length, sequence)[0]
    out = GradEllm(model, layers="all", spatial=spatial).attribute(sequence, [step])
    pre = out.layer_head[0].sum(dim=1)[:, : step.position + 1]  # [layer, pos] before the per-layer ReLU
    cats = position_categories(prompted, step.position + 1, set(model.tokenizer.all_special_ids))
    relu = pre.clamp(min=0)
    total = relu.sum(dim=1)
    if occlusion is None:
        occ = make_method("occlusion", model, sign="raw").attribute(sequence, [step]).scores[0, : step.position + 1]
    else:
        occ = occlusion
    agree = [spearman(pre[layer, cats["user"]].numpy(), occ[cats["user"]].numpy()) for layer in range(pre.shape[0])]
    summed = {"relu_then_sum": relu.sum(dim=0), "sum_then_relu": pre.sum(dim=0).clamp(min=0)}
    user = cats["user"]
    return {
        "share": {c: (relu[:, m].sum(dim=1) / total.clamp(min=1e-30)).tolist() for c, m in cats.items()},
        "zero_mass": (total <= 0).tolist(),
        "user_zeroed": (pre[:, user] <= 0).float().mean(dim=1).tolist(),
        "user_all_zeroed": (pre[:, user] <= 0).all(dim=1).tolist(),
        "combined_share": {k: {c: float(v[m].sum() / v.sum().clamp(min=1e-30)) for c, m in cats.items()}
                           for k, v in summed.items()},  # fmt: skip
        "combined_user_flat": {k: bool((v[user] <= 0).all()) for k, v in summed.items()},
        "occlusion_rho": agree,
        "combined_occlusion_rho": {k: spearman(v[user].numpy(), occ[user].numpy()) for k, v in summed.items()},
        "user_fraction": float(user.float().mean()),
        "occlusion": occ,
    }


def diagnose(model_name: str, n: int, out: Path) -> Path:
    """``<out>/diagnosis-<model>.md`` and ``.csv``: where the per-layer maps put their mass on SST-2."""
    import numpy as np

    from gradellm_lens import load_model
    from gradellm_lens.tasks import make_task

    model = load_model(model_name, device="cpu")
    task = make_task("sst2", prompt_format="plain", label_match="restricted")
    examples = task.load(n, 0)
    lines = [f"# Where Grad-ELLM's per-layer maps put their mass: {model_name}, SST-2", "",
             f"Written by `python analyses/grad_ellm_study.py diagnose --model {model_name} --n {n} {out}`: the "
             f"first {n} SST-2 examples of the study (plain prompt), the explained step (the first generated "
             "token), every layer's map before its ReLU, `c_l[i] = Σ_h c_{l,h,i}`. Shares are of Σ_i ReLU(c_l[i]) "
             "and averaged over examples; `sink` is position 0, `last` the explained position (the answer cue), "
             "`template` the rest of the instruction. `user zeroed`: mean share of the review's tokens whose "
             "c_l ≤ 0 (the ReLU sets them to 0); `all user zeroed`: share of examples whose review is all "
             "zero in that layer's map (π-Soft then scores the map as the uniform map). `ρ with occlusion`: mean "
             "over examples of Spearman's ρ, over the review's tokens, between the layer's map before its ReLU and "
             "the signed drop of the explained logit when each token's embedding is zeroed (occlusion).", ""]  # fmt: skip
    rows = []
    occlusions: list = [None] * len(examples)
    for spatial in ("loosened", "none"):
        per = [diagnose_example(model, task, ex, spatial, occ) for ex, occ in zip(examples, occlusions)]
        occlusions = [p["occlusion"] for p in per]
        n_layers = len(per[0]["user_zeroed"])
        lines += [f"## spatial = `{spatial}`" + (" (the default: min-max cosine)" if spatial == "loosened" else
                  " (λ = 1: gradient × value alone)"), "",  # fmt: skip
                  "| layer | " + " | ".join(CATEGORIES) + " | user zeroed | all user zeroed | no positive mass "
                  "| ρ with occlusion |", "|---|" + "---|" * (len(CATEGORIES) + 4)]  # fmt: skip
        for layer in range(n_layers):
            shares = {c: float(np.mean([p["share"][c][layer] for p in per])) for c in CATEGORIES}
            row = {"model": model_name, "spatial": spatial, "layer": layer, **shares,
                   "user_zeroed": float(np.mean([p["user_zeroed"][layer] for p in per])),
                   "all_user_zeroed": float(np.mean([p["user_all_zeroed"][layer] for p in per])),
                   "no_positive_mass": float(np.mean([p["zero_mass"][layer] for p in per])),
                   "occlusion_rho": float(np.nanmean([p["occlusion_rho"][layer] for p in per]))}  # fmt: skip
            rows.append(row)
            lines.append(f"| {layer} | " + " | ".join(f"{shares[c]:.2f}" for c in CATEGORIES)
                         + f" | {row['user_zeroed']:.2f} | {row['all_user_zeroed']:.2f} | {row['no_positive_mass']:.2f}"
                         + f" | {row['occlusion_rho']:+.2f} |")
        for combine in ("relu_then_sum", "sum_then_relu"):
            shares = {c: float(np.mean([p["combined_share"][combine][c] for p in per])) for c in CATEGORIES}
            flat = float(np.mean([p["combined_user_flat"][combine] for p in per]))
            rho = float(np.nanmean([p["combined_occlusion_rho"][combine] for p in per]))
            rows.append({"model": model_name, "spatial": spatial, "layer": f"all ({combine})", **shares,
                         "all_user_zeroed": flat, "occlusion_rho": rho})  # fmt: skip
            lines.append(f"| all, {combine} | " + " | ".join(f"{shares[c]:.2f}" for c in CATEGORIES)
                         + f" | – | {flat:.2f} | – | {rho:+.2f} |")
        fraction = float(np.mean([p["user_fraction"] for p in per]))
        lines += ["", f"The review is {fraction:.0%} of the prefix's tokens on average (a uniform map's user share).", ""]
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"diagnosis-{model_name}.md"
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    names = list(dict.fromkeys(k for r in rows for k in r))
    with (out / f"diagnosis-{model_name}.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return md


def _n_layers(model_name: str) -> int:
    from gradellm_lens import load_model, model_info

    return model_info(load_model(model_name, device="cpu")).n_layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    methods = sub.add_parser("methods", help="print the study's method specs for one model")
    methods.add_argument("--model", required=True, help="built-in model name")
    methods.add_argument("--per-layer", action="store_true", help="add every single layer's map")
    methods.add_argument("--combine", default="relu_then_sum", choices=("relu_then_sum", "sum_then_relu"),
                         help="the round: relu_then_sum (first) or sum_then_relu (second, from the best)")  # fmt: skip
    methods.add_argument("--baselines", action="store_true",
                         help="with the second round: the first round's last and all layers, and the released code")  # fmt: skip
    tables = sub.add_parser("tables", help="write study.md, configs.csv, per_layer.csv and auc_by_layer.png")
    tables.add_argument("out", type=Path, help="the study folder (<out>/<model>/<task>/results*.jsonl)")
    diag = sub.add_parser("diagnose", help="per-layer score shares on template/special/sink/user tokens")
    diag.add_argument("--model", required=True, help="built-in model name")
    diag.add_argument("--n", type=int, default=50, help="SST-2 examples (default 50, the study's)")
    diag.add_argument("out", type=Path, help="folder for diagnosis-<model>.md / .csv")
    args = parser.parse_args(argv)
    if args.command == "diagnose":
        print(diagnose(args.model, args.n, args.out))
    elif args.command == "methods":
        print(",".join(study_methods(_n_layers(args.model), args.per_layer, args.combine, args.baselines)))
    elif args.command == "tables":
        for path in write_tables(args.out):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
