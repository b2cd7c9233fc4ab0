"""Cross-task tables of the faithfulness verdict, one set per model, as Markdown.

Reads ``ROOT/<model>/<task>/results*.jsonl`` (written by ``analyses/faithfulness_run.py``; shards
are merged) and writes three files into ``--out-dir`` (default ``ROOT``):

* ``protocol.md``: per model and task, whether the model reads the text: prompt format, perturbed
  tokens, examples, accuracy [95% CI], majority-class rate, share of each predicted label, median
  ρ = (p(ŷ|x) − p(ŷ|x_∅)) / p(ŷ|x), ill-conditioned steps, and the summary's warning if any;
* ``paired.md``: paired bootstrap differences over examples, method − random, method − its
  shuffled control, and Grad-ELLM − every other method, for π-Soft-NS AUC and π-Soft-NC AUC (cells
  ``Δ [95% CI]``, ``*`` when the CI excludes 0, "n too small" below 5 examples);
* ``verdict.md``: the compact view, per model and task: each method's mean π-Soft-NS / NC AUC
  beside its paired Δ against ``random`` and against its own shuffled control;
* ``scores.md``: each row's mean π-Soft AUCs per task with its rank among the methods (1 = best;
  controls are not ranked) and the mean rank, then the seconds per (example, method).

::

    python analyses/faithfulness_table.py analyses/results/faithfulness
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradellm_lens.evaluation import Summary, read_results, summarize
from gradellm_lens.evaluation.summary import METRIC_NAMES, PAIRED_KEYS

TASK_ORDER = ("sst2", "imdb", "boolq", "tellmewhy", "wikibio")
REFERENCE_METHOD = "grad_ellm"


def load(root: Path) -> dict[str, dict[str, Summary]]:
    """model folder -> task -> summary of its shards (tasks without results are skipped)."""
    out: dict[str, dict[str, Summary]] = {}
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        tasks = {t: sorted((model_dir / t).glob("results*.jsonl")) for t in TASK_ORDER}
        summaries = {t: summarize(files) for t, files in tasks.items() if files}
        if summaries:
            out[model_dir.name] = summaries
    return out


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def protocol_table(summaries: dict[str, dict[str, Summary]]) -> str:
    head = ["model", "task", "prompt", "perturb", "n", "accuracy [95% CI]", "majority", "predicted labels",
            "median ρ", "ill-conditioned steps", "warning"]  # fmt: skip
    rows = []
    for model, tasks in summaries.items():
        for task, s in tasks.items():
            p = s.protocol
            if p is None:
                continue
            shares = ", ".join(f"{label} {share:.0%}" for label, share in p.label_shares.items()) or "–"
            warning = p.warning()
            rows.append([
                model, task, str(p.prompt_format), str(p.perturb), str(p.n_examples),
                p.accuracy.format(2) if p.accuracy else "–",
                f"{p.majority_rate:.2f}" if p.majority_rate is not None else "–", shares,
                f"{p.median_rho:.3f}" if p.median_rho is not None else "–",
                f"{p.n_ill_conditioned}/{p.n_steps}" if p.median_rho is not None else "–",
                warning.removeprefix("Warning: ") if warning else "",
            ])  # fmt: skip
    return "# Does the model read the text?\n\n" + _table(head, rows) + "\n"


def _delta_table(tasks: dict[str, Summary], key: str, pairs) -> str:
    """Rows ``a − b`` (from ``pairs(summary)``), columns tasks, cells the paired Δ [CI]."""
    cells: dict[str, dict[str, str]] = {}
    for task, s in tasks.items():
        for c in pairs(s):
            cells.setdefault(f"{c.a} − {c.b}", {})[task] = c.cell(key) + f" (n={c.n})"
    rows = [[label] + [row.get(t, "–") for t in tasks] for label, row in cells.items()]
    return _table(["A − B", *tasks], rows)


def paired_tables(summaries: dict[str, dict[str, Summary]]) -> str:
    sections = {
        "method − random": lambda s: [c for c in s.comparisons if c.kind == "vs_random"],
        "method − its shuffled control": lambda s: [c for c in s.comparisons if c.kind == "vs_shuffled"],
        f"{REFERENCE_METHOD} − other methods": lambda s: [
            c for c in s.comparisons if c.kind == "pair" and REFERENCE_METHOD in (c.a, c.b)
        ],
    }
    note = "Δ = mean over the examples both finished of A − B [95% CI]; `*`: the CI excludes 0; no CI below n = 5."
    parts = ["# Paired differences (bootstrap over examples)", "", note]
    for model, tasks in summaries.items():
        parts.append(f"\n## {model}")
        for title, pairs in sections.items():
            for key in PAIRED_KEYS:
                parts += [f"\n**{METRIC_NAMES[key]}, {title}**\n", _delta_table(tasks, key, pairs)]
    return "\n".join(parts) + "\n"


def verdict_tables(summaries: dict[str, dict[str, Summary]]) -> str:
    """Per model and task: mean AUCs, Δ vs random and Δ vs the method's shuffled control, both metrics."""
    head = ["method"]
    for key in PAIRED_KEYS:
        head += [METRIC_NAMES[key], "− random", "− shuffled"]
    note = "Mean over examples; Δ = paired mean difference [95% CI] (`*`: CI excludes 0); no CI below n = 5."
    parts = ["# Verdict: each method against random and against its own shuffled scores", "", note]
    for model, tasks in summaries.items():
        for task, s in tasks.items():
            vs = {(c.kind, c.a): c for c in s.comparisons if c.kind in ("vs_random", "vs_shuffled")}
            rows = []
            for m in s.methods:
                if m.control is not None:
                    continue
                row = [m.label]
                for key in PAIRED_KEYS:
                    mean = m.metrics[key].mean if key in m.metrics else None
                    row.append("–" if mean is None else f"{mean:.3f}")
                    for kind in ("vs_random", "vs_shuffled"):
                        c = vs.get((kind, m.label))
                        row.append(c.cell(key) if c else "–")
                rows.append(row)
            n = max((m.n_ok for m in s.methods), default=0)
            parts += [f"\n## {model} · {task} (n = {n})\n", _table(head, rows)]
    return "\n".join(parts) + "\n"


def ranks(values: dict[str, float]) -> dict[str, int]:
    """Competition ranks, 1 = highest value."""
    ordered = sorted(values.values(), reverse=True)
    return {label: 1 + ordered.index(v) for label, v in values.items()}


def score_table(tasks: dict[str, Summary], key: str) -> str:
    labels = list(dict.fromkeys(m.label for s in tasks.values() for m in s.methods))
    means = {t: {m.label: m.metrics[key].mean for m in s.methods if key in m.metrics} for t, s in tasks.items()}
    methods = {t: {m.label for m in s.methods if m.control is None} for t, s in tasks.items()}
    ranked = {t: ranks({label: v for label, v in means[t].items() if label in methods[t]}) for t in tasks}
    rows = []
    for label in labels:
        cells, rs = [], []
        for t in tasks:
            if label not in means[t]:
                cells.append("–")
                continue
            rank = ranked[t].get(label)
            rs += [rank] if rank else []
            text = f"{means[t][label]:.3f}" + (f" ({rank})" if rank else "")
            cells.append(f"**{text}**" if rank == 1 else text)
        mean_rank = sum(rs) / len(rs) if rs else float("inf")
        rows.append((mean_rank, [label, *cells, f"{mean_rank:.1f}" if rs else "–"]))
    n = {t: max((m.n_ok for m in s.methods), default=0) for t, s in tasks.items()}
    head = ["method", *(f"{t} (n={n[t]})" for t in tasks), "mean rank"]
    return _table(head, [row for _, row in sorted(rows, key=lambda r: r[0])])


def timing_table(root: Path, tasks: list[str]) -> str:
    """Mean wall seconds per (example, method) pair: attribution + metrics (all steps, maps and controls)."""
    cells: dict[str, dict[str, str]] = {}
    for task in tasks:
        per_method: dict[str, list[tuple[float, float]]] = {}
        for path in sorted((root / task).glob("results*.jsonl")):
            for r in read_results(path)[1]:
                if r["status"] != "failed":
                    per_method.setdefault(r["method"], []).append(
                        (r["timing"]["attribute_s"], r["timing"]["metrics_s"])
                    )
        for label, times in per_method.items():
            a, m = (sum(x) / len(times) for x in zip(*times))
            cells.setdefault(label, {})[task] = f"{a:.1f} + {m:.1f}"
    rows = [[label] + [c.get(t, "–") for t in tasks] for label, c in cells.items()]
    return _table(["method", *tasks], rows)


def scores(root: Path, summaries: dict[str, dict[str, Summary]]) -> str:
    note = (
        "Mean over examples (rank among the methods, 1 = best; controls unranked); ill-conditioned steps left "
        "out. Differences between methods are only meaningful with their paired CIs (`paired.md`)."
    )
    parts = ["# π-Soft AUCs across tasks", "", note]
    for model, tasks in summaries.items():
        parts.append(f"\n## {model}")
        for key in PAIRED_KEYS:
            parts += [f"\n**{METRIC_NAMES[key]}**\n", score_table(tasks, key)]
        parts += ["\n**Seconds per example and method** (attribution + metrics, wall clock)\n",
                  timing_table(root / model, list(tasks))]  # fmt: skip
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder holding one folder per model, each with one per task")
    parser.add_argument("--out-dir", type=Path, default=None, help="where the Markdown files go (default: root)")
    args = parser.parse_args()
    summaries = load(args.root)
    out = args.out_dir or args.root
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("protocol.md", protocol_table(summaries)),
        ("paired.md", paired_tables(summaries)),
        ("verdict.md", verdict_tables(summaries)),
        ("scores.md", scores(args.root, summaries)),
    ):
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
