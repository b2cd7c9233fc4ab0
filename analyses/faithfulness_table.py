"""Cross-task tables of the faithfulness report: one row per method, one column per task.

For π-Soft-NC AUC and π-Soft-NS AUC (and plain Soft-NC / Soft-NS) each cell is the method's mean
over the task's examples with its rank among the methods on that task (1 = best); the last column
is the mean rank over tasks. A last table gives the mean seconds per (example, method) pair spent in
the attribution and in the metrics. Reads the run folders written by ``analyses/run_faithfulness.sh``::

    python analyses/faithfulness_table.py analyses/results/faithfulness > analyses/results/faithfulness/combined.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradellm_lens.evaluation import read_results, summarize
from gradellm_lens.evaluation.summary import METRIC_NAMES

TASK_ORDER = ("sst2", "imdb", "boolq", "tellmewhy", "wikibio")
TABLE_METRICS = ("auc_pi_nc", "auc_pi_ns", "soft_nc", "soft_ns")


def ranks(values: dict[str, float]) -> dict[str, int]:
    """Competition ranks, 1 = highest value."""
    ordered = sorted(values.values(), reverse=True)
    return {label: 1 + ordered.index(v) for label, v in values.items()}


def table(summaries: dict, metric: str) -> str:
    tasks = [t for t in TASK_ORDER if t in summaries]
    labels = list(dict.fromkeys(m.label for s in summaries.values() for m in s.methods))
    per_task = {
        t: {m.label: m.metrics[metric].mean for m in summaries[t].methods if metric in m.metrics} for t in tasks
    }
    task_ranks = {t: ranks(v) for t, v in per_task.items()}
    n = {t: max((m.n_ok for m in summaries[t].methods), default=0) for t in tasks}
    head = "| method | " + " | ".join(f"{t} (n={n[t]})" for t in tasks) + " | mean rank |"
    lines = [
        f"**{METRIC_NAMES[metric]}** (mean over examples, rank among methods)",
        "",
        head,
        "|---" * (len(tasks) + 2) + "|",
    ]
    rows = []
    for label in labels:
        cells, rs = [], []
        for t in tasks:
            if label in per_task[t]:
                r = task_ranks[t][label]
                rs.append(r)
                text = f"{per_task[t][label]:.3f} ({r})"
                cells.append(f"**{text}**" if r == 1 else text)
            else:
                cells.append("–")
        mean_rank = sum(rs) / len(rs) if rs else float("inf")
        rows.append((mean_rank, f"| {label} | " + " | ".join(cells) + f" | {mean_rank:.1f} |"))
    lines += [row for _, row in sorted(rows, key=lambda x: x[0])]
    return "\n".join(lines)


def timing_table(root: Path, tasks: list[str]) -> str:
    """Mean wall seconds per (example, method) pair: attribution + metrics (all steps of the example)."""
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
            cells.setdefault(label, {})[task] = f"{a:.0f} + {m:.0f}"
    head = "| method | " + " | ".join(tasks) + " |"
    rows = [f"| {label} | " + " | ".join(c.get(t, "–") for t in tasks) + " |" for label, c in cells.items()]
    title = "**Seconds per example and method** (attribution + metrics, wall clock on the shared 2-core CPU)"
    return "\n".join([title, "", head, "|---" * (len(tasks) + 1) + "|", *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder holding one run folder per task")
    args = parser.parse_args()
    summaries = {}
    for task in TASK_ORDER:
        files = sorted((args.root / task).glob("results*.jsonl"))
        if files:
            summaries[task] = summarize(files)
    accuracy = ", ".join(
        f"{t} {s.accuracy.format(2)} ({next(iter(s.configs.values()))['task']['label_match']})"
        for t, s in summaries.items()
        if s.accuracy is not None
    )
    print("# Faithfulness across tasks\n")
    print(f"Task accuracy [95% CI]: {accuracy}.\n")
    for metric in TABLE_METRICS:
        print(table(summaries, metric) + "\n")
    print(timing_table(args.root, list(summaries)))


if __name__ == "__main__":
    main()
