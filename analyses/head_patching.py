"""Head importance against activation patching: does Grad-ELLM find the heads that patching finds?

For each contrast task (``ioi``, ``factual_recall``, ``induction``, ``greater_than``;
:mod:`gradellm_lens.tasks.contrast`) and ``--n`` clean/corrupted pairs, on one model:

* **ground truth**: per-head activation patching at ``hook_z``, both directions
  (:func:`gradellm_lens.analysis.activation_patching`), oriented so that positive = the head carries
  the clean behaviour;
* **scorers**, each on the same pair: Grad-ELLM head importance (``GradEllm(layers="all")``, the
  default configuration of :func:`~gradellm_lens.analysis.grad_ellm_head_importance`, reduced by
  every importance measure: ``positive`` (the default), ``net_abs``, ``net``, ``abs``) of the clean
  prompt; attribution patching (same direction); the output norm ‖z_h W_O^h‖ of the clean prompt at
  the metric positions; random scores;
* **agreement** (:func:`~gradellm_lens.analysis.scorer_agreement`): pooled Spearman's ρ and top-k
  recall (k = 5, 10, 20), per-pair ρ, with bootstrap 95% CIs over pairs; against the signed truth
  (``view=signed``) and with both sides as magnitudes (``view=abs``);
* **cumulative ablation curves** (noising): the top-k heads of each scorer (computed on that pair)
  patched together with the corrupted prompt's activations in the clean run, the metric drop as a
  share of the task's mean clean - corrupted gap; control: ``--control-draws`` draws of random heads
  from the same layers as the scorer's top-k (:func:`~gradellm_lens.analysis.layer_matched_order`),
  and the paired difference scorer - control with its CI;
* **cost**: each scorer's seconds per pair as a ratio to one forward pass of the clean prompt
  (median of ``--forward-repeats``), measured in the same run.

Resumable per (model, task): each finished pair is one line of ``OUT/<model>/<task>/pairs.jsonl``;
rerunning the same command skips them (a different configuration in the same folder is refused).
Then the tables and figures are (re)written from all finished pairs (``--summary-only`` does only that):

    OUT/<model>/task_check.{md,csv}   accuracy, clean/corrupted metric, gap [CI], solved or not
    OUT/<model>/agreement.{md,csv}    Spearman's ρ and recall@k of every scorer [CI]
    OUT/<model>/curves.{md,csv}       ablation curves, their same-layer controls, differences [CI]
    OUT/<model>/cost.{md,csv}         seconds per pair and ratio to one forward pass; wall time per task
    OUT/<model>/heads_<task>.{png,html} ground truth and scorers side by side (layer x head)
    OUT/<model>/run.md                 the command, the tasks and the wall time per task
    OUT/<model>/curves_<task>.png     the curves with their controls
    OUT/overview.md                    every model and task in one table (ρ, top-5 patching, solved)

Run from the repository root (one thread per process; two models can run side by side)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python analyses/head_patching.py --model smollm2-135m-instruct --n 20 \\
        --out analyses/results/head-patching
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradellm_lens import load_model
from gradellm_lens.analysis import (
    Ablation,
    HeadImportance,
    ablation_effects,
    activation_patching,
    attribution_patching,
    collect_reference,
    dataset_head_importance,
    head_importance,
    layer_matched_order,
    output_norm_importance,
    random_importance,
    scorer_agreement,
)
from gradellm_lens.analysis.importance import IMPORTANCE_MEASURES
from gradellm_lens.analysis.patching import DIRECTIONS
from gradellm_lens.cli.studies import common as study
from gradellm_lens.errors import InvalidInputError
from gradellm_lens.evaluation import bootstrap_ci
from gradellm_lens.methods import GradEllm
from gradellm_lens.models import model_info
from gradellm_lens.seeding import stable_seed
from gradellm_lens.tasks import list_tasks, make_task
from gradellm_lens.tasks.contrast import MIN_ACCURACY
from gradellm_lens.viz import plot_head_comparison, write_report

GRAD_ELLM = [f"grad_ellm:{m}" for m in IMPORTANCE_MEASURES]
SCORERS = [*GRAD_ELLM, "attribution_patching", "output_norm", "random"]
TRUTH = "activation_patching"
COUNTS = "0,1,2,5,10,20"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True, help="built-in model name, e.g. smollm2-135m-instruct")
    p.add_argument("--tasks", default=",".join(list_tasks("contrast")), help="comma-separated contrast tasks")
    p.add_argument("--n", type=int, default=20, help="pairs per task (default 20)")
    p.add_argument("--out", type=Path, required=True, help="output folder (a sub-folder per model)")
    p.add_argument("--seed", type=int, default=0, help="pair-generation seed (default 0)")
    p.add_argument("--counts", default=COUNTS, help=f"heads ablated at each curve point (default {COUNTS})")
    p.add_argument("--control-draws", type=int, default=3, help="same-layer random controls per curve (default 3)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--batch-size", type=int, default=32, help="patched heads per forward pass (default 32)")
    p.add_argument("--forward-repeats", type=int, default=5, help="forward passes timed per pair (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--summary-only", action="store_true", help="only rewrite the tables and figures")
    args = p.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for task in args.tasks:
        make_task(task, family="contrast")  # unknown or non-contrast tasks fail before the model loads
    args.counts = sorted({int(k) for k in args.counts.split(",")})
    return args


def config(args: argparse.Namespace, task: str) -> dict[str, Any]:
    """What the per-pair results depend on (checked when a run is resumed)."""
    header = {"model": args.model, "task": make_task(task).describe(), "seed": args.seed, "counts": args.counts,
              "control_draws": args.control_draws}  # fmt: skip
    return json.loads(json.dumps(header))  # as it reads back from the file (tuples become lists)


# ---- one pair ------------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


@torch.no_grad()
def forward_seconds(model, tokens: torch.Tensor, repeats: int) -> float:
    """Median wall time of one no-grad forward of ``tokens`` (after one warm-up pass)."""
    batch = tokens[None].to(next(model.parameters()).device)
    model(batch)
    return statistics.median(timed(lambda: model(batch))[1] for _ in range(repeats))


def scores_of(model, pair, seconds: dict[str, float]) -> tuple[dict, dict]:
    """Ground truth (both directions, raw effects) and every scorer's ``[layer, head]`` scores."""
    truth, seconds["activation_patching"] = timed(
        lambda: activation_patching(model, pair.clean, pair.corrupted, list(pair.steps))
    )
    atp, seconds["attribution_patching"] = timed(
        lambda: attribution_patching(model, pair.clean, pair.corrupted, list(pair.steps))
    )
    out, seconds["grad_ellm"] = timed(lambda: GradEllm(model, layers="all").attribute(pair.clean, list(pair.steps)))
    norm, seconds["output_norm"] = timed(lambda: output_norm_importance(model, pair.clean, pair.positions))
    info = model_info(model)
    rand, seconds["random"] = timed(lambda: random_importance(info.n_layers, info.n_heads, seed=stable_seed(pair.id)))
    scores = {m: head_importance(out, m.split(":")[1]).scores.tolist() for m in GRAD_ELLM}
    scores |= {"output_norm": norm.scores.tolist(), "random": rand.scores.tolist()}
    for d in DIRECTIONS:
        scores[f"attribution_patching:{d}"] = atp.effects(d).tolist()
    effects = {d: truth.effects(d).tolist() for d in DIRECTIONS}
    return effects, scores


def curve_orders(record: dict, n_heads: int, k_max: int, draws: int) -> dict[str, list]:
    """Head orders of the curves: the truth (oracle), each scorer, and each one's same-layer controls."""
    orders = {TRUTH: importance_of(record, TRUTH, "noising").ranking()}
    orders |= {name: importance_of(record, name, "noising").ranking() for name in SCORERS}
    for name in [TRUTH, *SCORERS]:
        if name != "random":
            for draw in range(draws):
                seed = stable_seed(f"{record['id']}/{name}/{draw}")
                orders[f"{name} [control {draw}]"] = layer_matched_order(orders[name], n_heads, k_max, seed)
    return orders


def curves_of(model, pair, record: dict, args: argparse.Namespace) -> dict[str, list[float]]:
    """Metric of the clean run with each order's top-k heads patched from the corrupted run."""
    info = model_info(model)
    orders = curve_orders(record, info.n_heads, max(args.counts), args.control_draws)
    reference = collect_reference(model, [pair.corrupted], hooks=("z",))
    counts = [k for k in args.counts if k > 0]
    patches = [Ablation(heads=order[:k], mode="resample", reference=reference, source=0)
               for order in orders.values() for k in counts]  # fmt: skip
    effects = ablation_effects(model, pair.clean, list(pair.steps), patches, batch_size=args.batch_size)
    values = [e.ablated_score for e in effects]
    clean = effects[0].clean_score
    return {name: [clean if k == 0 else values[i * len(counts) + counts.index(k)] for k in args.counts]
            for i, name in enumerate(orders)}  # fmt: skip


def run_pair(model, task, pair, args: argparse.Namespace) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    seconds["forward"] = forward_seconds(model, pair.clean, args.forward_repeats)
    check = task.check(model, [pair])
    effects, scores = scores_of(model, pair, seconds)
    record = {"id": pair.id, "clean_text": pair.clean_text, "corrupted_text": pair.corrupted_text,
              "fields": dict(pair.fields), "length": pair.length, "clean_metric": check.clean_metrics[0],
              "corrupted_metric": check.corrupted_metrics[0], "accuracy": check.accuracies[0],
              "layers": list(range(model_info(model).n_layers)), "truth": effects, "scores": scores}  # fmt: skip
    record["curves"], seconds["curves"] = timed(lambda: curves_of(model, pair, record, args))
    seconds["total"] = time.perf_counter() - start
    record["seconds"] = seconds
    return record


# ---- reading the records ---------------------------------------------------------------------------------
def importance_of(record: dict, name: str, direction: str) -> HeadImportance:
    """A record's oriented ground truth or scorer as a HeadImportance (positive = carries the clean behaviour)."""
    layers = tuple(record["layers"])
    if name == TRUTH:
        sign = -1.0 if direction == "noising" else 1.0
        return HeadImportance(sign * torch.tensor(record["truth"][direction]), layers, f"{TRUTH}:{direction}")
    if name == "attribution_patching":
        sign = -1.0 if direction == "noising" else 1.0
        values = sign * torch.tensor(record["scores"][f"{name}:{direction}"])
        return HeadImportance(values, layers, f"{name}:{direction}")
    return HeadImportance(torch.tensor(record["scores"][name]), layers, name)


def read_records(path: Path, header: dict[str, Any]) -> list[dict]:
    """The finished pairs of ``path`` (its header must equal ``header``)."""
    if not path.is_file():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0].get("header") != header:
        raise InvalidInputError(
            f"{path} was written with another configuration ({lines[0].get('header') if lines else 'no header'}); "
            "use another --out folder or the same options."
        )
    return lines[1:]


# ---- tables ---------------------------------------------------------------------------------------------
def cell(estimate, digits: int = 3) -> str:
    if estimate is None or (isinstance(estimate.mean, float) and math.isnan(estimate.mean)):
        return "n/a"
    return estimate.format(digits)


def check_rows(task: str, records: list[dict], n_boot: int) -> tuple[dict, dict]:
    acc = bootstrap_ci([r["accuracy"] for r in records], n_boot)
    gap = bootstrap_ci([r["clean_metric"] - r["corrupted_metric"] for r in records], n_boot)
    metric = make_task(task).describe()["metric"]
    solved = acc.mean >= MIN_ACCURACY and gap.mean > 0
    row = {"task": task, "n": len(records), "metric": metric, "accuracy": acc.mean, "accuracy_low": acc.low,
           "accuracy_high": acc.high, "clean": float(np.mean([r["clean_metric"] for r in records])),
           "corrupted": float(np.mean([r["corrupted_metric"] for r in records])), "gap": gap.mean,
           "gap_low": gap.low, "gap_high": gap.high, "solved": solved}  # fmt: skip
    md = {"task": task, "n": len(records), "metric": metric, "accuracy": cell(acc, 2), "clean": row["clean"],
          "corrupted": row["corrupted"], "gap": cell(gap, 2),
          "solved": "yes" if solved else f"**NO** (accuracy < {MIN_ACCURACY} or gap <= 0)"}  # fmt: skip
    return row, md


def agreement_rows(task: str, records: list[dict], args) -> tuple[list[dict], list[dict]]:
    rows, md = [], []
    for direction in DIRECTIONS:
        truth = [importance_of(r, TRUTH, direction) for r in records]
        for view in ("signed", "abs"):
            prepare = (lambda imp: imp) if view == "signed" else HeadImportance.magnitude
            for name in SCORERS:
                scores = [prepare(importance_of(r, name, direction)) for r in records]
                agreement = scorer_agreement([prepare(t) for t in truth], scores, scorer=name, n_boot=args.n_boot)
                rows.append({"task": task, "direction": direction, "view": view, **agreement.row()})
                md.append({"task": task, "direction": direction, "view": view, "scorer": name,
                           "spearman": cell(agreement.spearman),
                           **{f"recall@{k}": cell(e, 2) for k, e in agreement.recall.items()},
                           "per-pair ρ": cell(agreement.per_prompt_spearman)})  # fmt: skip
    return rows, md


def curve_rows(task: str, records: list[dict], args) -> tuple[list[dict], list[dict], dict]:
    """Mean share of the task's mean gap removed at each k, per order, control and difference [CI]."""
    mean_gap = float(np.mean([r["clean_metric"] - r["corrupted_metric"] for r in records]))
    scale = mean_gap if mean_gap > 0 else float("nan")
    drops = {name: np.array([[(r["clean_metric"] - v) / scale for v in r["curves"][name]] for r in records])
             for name in records[0]["curves"]}  # fmt: skip
    rows, md, plotted = [], [], {}
    for name in [TRUTH, *SCORERS]:
        controls = [drops[c] for c in drops if c.startswith(f"{name} [control")]
        control = np.mean(controls, axis=0) if controls else None
        plotted[name] = (drops[name].mean(axis=0), None if control is None else control.mean(axis=0))
        for j, k in enumerate(args.counts):
            own = bootstrap_ci(drops[name][:, j], args.n_boot)
            row = {"task": task, "order": name, "k": k, "drop_share": own.mean, "drop_low": own.low,
                   "drop_high": own.high}  # fmt: skip
            line = {"task": task, "order": name, "k": k, "drop (share of gap)": cell(own)}
            if control is not None:
                ctrl, diff = (
                    bootstrap_ci(control[:, j], args.n_boot),
                    bootstrap_ci(drops[name][:, j] - control[:, j], args.n_boot),
                )
                row |= {"control": ctrl.mean, "control_low": ctrl.low, "control_high": ctrl.high,
                        "minus_control": diff.mean, "minus_control_low": diff.low, "minus_control_high": diff.high}  # fmt: skip
                line |= {"same-layer control": cell(ctrl), "minus control": cell(diff)}
            rows.append(row)
            md.append(line)
    return rows, md, plotted


def cost_rows(task: str, records: list[dict]) -> tuple[list[dict], float]:
    keys = ["forward", "activation_patching", "attribution_patching", "grad_ellm", "output_norm", "random", "curves"]
    rows = []
    for key in keys:
        seconds = [r["seconds"][key] for r in records]
        ratios = [r["seconds"][key] / r["seconds"]["forward"] for r in records]
        rows.append({"task": task, "step": key, "seconds_per_pair": float(np.mean(seconds)),
                     "ratio_to_forward": float(np.mean(ratios)), "n": len(records)})  # fmt: skip
    return rows, float(sum(r["seconds"]["total"] for r in records))


def summarise(args: argparse.Namespace, model_dir: Path) -> None:
    checks, checks_md, agreement, agreement_md, curves, curves_md, costs, walls = [], [], [], [], [], [], [], {}
    plt = study.pyplot()
    for task in args.tasks:
        records = read_records(model_dir / task / "pairs.jsonl", config(args, task))
        if not records:
            continue
        row, md = check_rows(task, records, args.n_boot)
        checks.append(row)
        checks_md.append(md)
        rows, md = agreement_rows(task, records, args)
        agreement += rows
        agreement_md += md
        rows, md, plotted = curve_rows(task, records, args)
        curves += rows
        curves_md += md
        rows, walls[task] = cost_rows(task, records)
        costs += rows
        pooled = {name: dataset_head_importance([importance_of(r, name, "noising") for r in records])
                  for name in [TRUTH, *SCORERS]}  # fmt: skip
        scorers = {n: pooled[n] for n in SCORERS}
        fig = plot_head_comparison(pooled[TRUTH], scorers, truth_label=f"{TRUTH} (noising)")
        fig.savefig(model_dir / f"heads_{task}.png", dpi=110, bbox_inches="tight")
        title = f"{args.model}, {task}: heads, n = {len(records)} pairs"
        write_report([], model_dir / f"heads_{task}.html", title, head_truth=pooled[TRUTH], head_scorers=scorers)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, (name, (own, control)) in enumerate(plotted.items()):
            colour = f"C{i}"
            ax.plot(args.counts, own, marker="o", color=colour, label=name)
            if control is not None:
                ax.plot(args.counts, control, ls="--", color=colour, alpha=0.6)
        ax.set(xscale="symlog", xlabel="heads patched (top-k of each order)", ylabel="share of the mean gap removed",
               title=f"{args.model}, {task}: n = {len(records)} (dashed: same-layer random control)")  # fmt: skip
        ax.legend(fontsize="x-small")
        study.save_figure(fig, model_dir, f"curves_{task}")
        plt.close("all")
    if not checks:
        print(f"no finished pairs under {model_dir}")
        return
    caption = f"{args.model}, seed {args.seed}, bootstrap {args.n_boot} resamples over pairs (95% CI)"
    study.write_table(checks, model_dir, "task_check", title=f"Does the model solve each task? ({caption})",
                      md_rows=checks_md)  # fmt: skip
    study.write_table(agreement, model_dir, "agreement", md_rows=agreement_md,
                      title=f"Scorers against activation patching: pooled Spearman's ρ, top-k recall, per-pair ρ ({caption})")  # fmt: skip
    study.write_table(curves, model_dir, "curves", md_rows=curves_md,
                      title=f"Cumulative patching of each order's top-k heads (noising) and its same-layer control ({caption})")  # fmt: skip
    wall = ", ".join(f"{t} {s / 60:.1f} min" for t, s in walls.items())
    study.write_table(costs, model_dir, "cost", title=f"Seconds per pair and ratio to one forward pass ({caption}); "
                      f"wall time per task: {wall}")  # fmt: skip
    given = [a for a in sys.argv[1:] if a != "--summary-only"] if argv_seen() else []
    command = " ".join(["python analyses/head_patching.py", *given])
    (model_dir / "run.md").write_text(
        f"# Head patching study: {args.model}\n\nCommand (from the repository root, `OMP_NUM_THREADS=1`):\n\n"
        f"    {command}\n\nTasks: {', '.join(args.tasks)}; n = {args.n} pairs per task; seed {args.seed}.\n"
        f"Wall time per task: {wall}.\n\nFiles: task_check, agreement, curves, cost (.md/.csv); "
        "heads_<task>.png/.html; curves_<task>.png; <task>/pairs.jsonl (per pair, resumable).\n"
    )
    for row in checks_md:
        print(row)
    print(f"wall time per task: {wall}; tables in {model_dir}")
    if path := overview(model_dir.parent):
        print(f"every model: {path}")


OVERVIEW_SCORERS = {"grad_ellm:positive": "Grad-ELLM", "attribution_patching": "attribution patching",
                    "output_norm": "output norm", "random": "random"}  # fmt: skip


def overview(out: Path, k: int = 5) -> Path | None:
    """Every model and task under ``out`` in two tables (noising direction): ``OUT/overview.md``.

    Agreement: whether the model solves the task and each scorer's pooled Spearman's ρ with
    activation patching, signed and by magnitude (both sides as magnitudes). Patching: the
    share of the gap that patching each order's top-k heads removes, and Grad-ELLM's top-k minus its
    same-layer control. CIs as in the model tables.
    """
    import csv

    def read(path: Path) -> list[dict[str, str]]:
        with path.open() as fh:
            return list(csv.DictReader(fh))

    def est(row: dict[str, str], key: str, low: str, high: str) -> str:
        return f"{float(row[key]):.2f} [{float(row[low]):.2f}, {float(row[high]):.2f}]"

    agree, patch = [], []
    for model_dir in sorted(d for d in out.iterdir() if (d / "agreement.csv").is_file()):
        checks = {r["task"]: r for r in read(model_dir / "task_check.csv")}
        rho = {(r["task"], r["view"], r["scorer"]): est(r, "spearman", "spearman_low", "spearman_high")
               for r in read(model_dir / "agreement.csv") if r["direction"] == "noising"}  # fmt: skip
        drops = {(r["task"], r["order"]): r for r in read(model_dir / "curves.csv") if int(r["k"]) == k}
        for task, check in checks.items():
            head = {"model": model_dir.name, "task": task}
            solved = f"{float(check['accuracy']):.2f}" + ("" if check["solved"] == "True" else " (not solved)")
            row = {**head, "n": check["n"], "accuracy": solved}
            for scorer, label in OVERVIEW_SCORERS.items():
                row[f"ρ {label}"] = rho[(task, "signed", scorer)]
                if scorer in ("grad_ellm:positive", "output_norm"):
                    row[f"ρ by magnitude, {label}"] = rho[(task, "abs", scorer)]
            agree.append(row)
            row = dict(head)
            for order, label in {TRUTH: "activation patching", **OVERVIEW_SCORERS}.items():
                row[label] = est(drops[(task, order)], "drop_share", "drop_low", "drop_high")
                if order == "grad_ellm:positive":
                    row["Grad-ELLM − same-layer control"] = est(
                        drops[(task, order)], "minus_control", "minus_control_low", "minus_control_high"
                    )
            patch.append(row)
    if not agree:
        return None

    def table(rows: list[dict[str, str]]) -> list[str]:
        columns = list(rows[0])
        return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                *("| " + " | ".join(row[c] for c in columns) + " |" for row in rows)]  # fmt: skip

    lines = ["# Heads against activation patching: every model (noising, 95% bootstrap CIs over pairs)", "",
             "## Spearman's ρ with activation patching", "", *table(agree), "",
             f"## Share of the clean − corrupted gap removed by patching each order's top {k} heads", "",
             *table(patch)]  # fmt: skip
    path = out / "overview.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def argv_seen() -> bool:
    """Whether this process was started as the script (so ``sys.argv`` holds its command line)."""
    return Path(sys.argv[0]).name == Path(__file__).name


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir = args.out / args.model
    if not args.summary_only:
        torch.manual_seed(0)
        torch.set_num_threads(args.threads)
        model = load_model(args.model, device=args.device)
        for name in args.tasks:
            task = make_task(name)
            path = model_dir / name / "pairs.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            header = config(args, name)
            done = {r["id"] for r in read_records(path, header)}
            if not path.is_file():
                path.write_text(json.dumps({"header": header}) + "\n")
            pairs = task.pairs(model, args.n, args.seed)
            print(task.check(model, pairs).summary(), flush=True)
            for pair in pairs:
                if pair.id in done:
                    continue
                record = run_pair(model, task, pair, args)
                with path.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
                print(f"{pair.id}: {record['seconds']['total']:.1f} s", flush=True)
    summarise(args, model_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
