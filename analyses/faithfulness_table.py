"""Cross-task tables of the faithfulness report: one row per method, one column per task.

For π-Soft-NC AUC and π-Soft-NS AUC (and plain Soft-NC / Soft-NS) each cell is the method's mean
over the task's examples with its rank among the methods on that task (1 = best); the last column
is the mean rank over tasks. Reads the run folders written by ``analyses/run_faithfulness.sh``::

    python analyses/faithfulness_table.py analyses/results/faithfulness > analyses/results/faithfulness/combined.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradellm_lens.evaluation import summarize
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder holding one run folder per task")
    args = parser.parse_args()
    summaries = {}
    for task in TASK_ORDER:
        files = sorted((args.root / task).glob("results*.jsonl"))
        if files:
            summaries[task] = summarize(files)
    accuracy = ", ".join(f"{t} {s.accuracy.format(2)}" for t, s in summaries.items() if s.accuracy is not None)
    print("# Faithfulness across tasks\n")
    print(f"Task accuracy (restricted label-word argmax) [95% CI]: {accuracy}.\n")
    for metric in TABLE_METRICS:
        print(table(summaries, metric) + "\n")


if __name__ == "__main__":
    main()
