"""Summaries of results files: mean and bootstrap 95% CI per method and metric, task accuracy, π curves.

Per (example, method) a metric's value is its mean over the example's non-degenerate steps (the
line's ``mean``). A method's score is the mean of those values over its ``ok`` examples; the 95%
confidence interval is the percentile bootstrap over examples: ``B`` resamples of the examples
with replacement (seeded), the 2.5th and 97.5th percentiles of the resampled means. The π curves
are averaged the same way, point by point. Task accuracy (classification) is the fraction of
unique examples whose answer matched the gold label, with the same bootstrap CI. Failed and
degenerate pairs are counted, never averaged. *Flat* steps (scores that single out no token, scored
as the uniform map) stay in the means and are counted per method (``flat steps``: flat / all steps
of the ``ok`` and ``degenerate`` pairs that record the flag; "–" for files written before it existed).

Several files (the shards of one run) are merged: a pair present twice is counted once, and the
pairs are taken in example order (``index``), so a sharded run summarises exactly like a
single-process one. Files or
headers with different common options are refused unless ``allow_mixed``, in which case each
configuration's rows are kept apart (labels get an ``@<fingerprint>`` suffix).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .runner import CURVE_KEYS, METRIC_KEYS
from .store import describe_difference, read_results

METRIC_NAMES: dict[str, str] = {
    "soft_ns": "Soft-NS",
    "soft_nc": "Soft-NC",
    "auc_pi_ns": "π-Soft-NS AUC",
    "auc_pi_nc": "π-Soft-NC AUC",
    "mean_score": "mean score",
}
FAITHFULNESS_KEYS: tuple[str, ...] = ("soft_ns", "soft_nc", "auc_pi_ns", "auc_pi_nc")


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap confidence interval over ``n`` examples (entry-wise for curves)."""

    mean: Any
    low: Any
    high: Any
    n: int

    def format(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> Estimate:
    """Percentile-bootstrap CI of the mean over the first axis of ``values`` (scalars or curves)."""
    x = np.asarray(values, dtype=np.float64)
    if x.shape[0] == 0:
        raise InvalidInputError("Cannot summarise zero values.")
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise InvalidInputError(f"Need n_boot >= 1 and 0 < level < 1, got {n_boot} and {level}.")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[0], size=(n_boot, x.shape[0]))
    means = x[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=0)
    mean = x.mean(axis=0)
    as_out = (lambda a: float(a)) if x.ndim == 1 else (lambda a: tuple(float(v) for v in a))
    return Estimate(as_out(mean), as_out(low), as_out(high), int(x.shape[0]))


@dataclass(frozen=True)
class MethodSummary:
    """One row of the table: a method (configuration) over the examples it finished.

    ``n_flat_steps`` of the ``n_steps`` generated steps (of the pairs that record the flag) had flat
    scores; None when no pair records it.
    """

    label: str
    n_ok: int
    n_failed: int
    n_degenerate: int
    metrics: dict[str, Estimate]
    pis: tuple[float, ...] = ()
    curves: dict[str, Estimate] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    n_steps: int = 0
    n_flat_steps: int | None = None

    def flat_cell(self) -> str:
        """``"flat/steps"``, or "–" when the results predate the per-step flat flag."""
        return "–" if self.n_flat_steps is None else f"{self.n_flat_steps}/{self.n_steps}"


@dataclass(frozen=True)
class Summary:
    """Everything a summary table, CSV and plot show."""

    task: str
    model: str
    configs: dict[str, dict[str, Any]]
    methods: list[MethodSummary]
    accuracy: Estimate | None
    n_examples: int
    files: tuple[str, ...]
    duplicates: int = 0

    def rows(self) -> list[dict[str, Any]]:
        """Long-format rows (method, metric, mean, ci_low, ci_high, n) for the CSV."""
        out = []
        if self.accuracy is not None:
            a = self.accuracy
            out.append(
                {"method": "(task)", "metric": "accuracy", "mean": a.mean, "ci_low": a.low, "ci_high": a.high, "n": a.n}
            )
        for m in self.methods:
            for key, e in m.metrics.items():
                out.append(
                    {"method": m.label, "metric": key, "mean": e.mean, "ci_low": e.low, "ci_high": e.high, "n": e.n}
                )
            for key in ("failed", "degenerate"):
                out.append(
                    {
                        "method": m.label,
                        "metric": f"n_{key}",
                        "mean": getattr(m, f"n_{key}"),
                        "ci_low": "",
                        "ci_high": "",
                        "n": "",
                    }
                )
            if m.n_flat_steps is not None:
                row = {"method": m.label, "metric": "n_flat_steps", "mean": m.n_flat_steps, "ci_low": "", "ci_high": ""}
                out.append({**row, "n": m.n_steps})
        return out

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=["method", "metric", "mean", "ci_low", "ci_high", "n"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(self.rows())
        return buffer.getvalue()

    def describe_setup(self) -> str:
        """One paragraph: examples, accuracy and the metric options."""
        config = next(iter(self.configs.values()))
        metrics, task = config["metrics"], config["task"]
        pis = metrics["pis"]
        parts = [_count(self.n_examples, "example")]
        if self.accuracy is not None:
            parts.append(f"accuracy {self.accuracy.format()} ({task.get('label_match')})")
        parts += [
            f"prompt format {task.get('prompt_format')}",
            f"π grid {pis[0]:g}…{pis[-1]:g} ({len(pis)} points)",
            _count(metrics["n_draws"], "draw"),
            f"rescale {metrics['rescale']}",
            f"probability {metrics['probability']}",
            f"perturb {config['perturb']}",
        ]
        if task["kind"] == "generation":
            parts.insert(1, f"≤ {task['max_new_tokens']} generated tokens per example")
        if len(self.configs) > 1:
            parts.append(f"{len(self.configs)} configurations (labels suffixed @fingerprint)")
        return "; ".join(parts) + "."

    def to_markdown(self) -> str:
        """The table: mean [95% CI] per method and metric, best mean per faithfulness metric in bold."""
        keys = list(METRIC_KEYS)
        best = {
            k: max((m.metrics[k].mean for m in self.methods if k in m.metrics), default=None) for k in FAITHFULNESS_KEYS
        }
        head = "| method | n | failed | " + " | ".join(METRIC_NAMES[k] for k in keys) + " | flat steps |"
        lines = [head, "|" + "---|" * (4 + len(keys))]
        for m in self.methods:
            cells = []
            for k in keys:
                e = m.metrics.get(k)
                text = "–" if e is None else e.format()
                if e is not None and best.get(k) is not None and e.mean == best[k]:
                    text = f"**{e.mean:.3f}**" + text[len(f"{e.mean:.3f}") :]
                cells.append(text)
            lines.append(f"| {m.label} | {m.n_ok} | {m.n_failed} | " + " | ".join(cells) + f" | {m.flat_cell()} |")
        return "\n".join(lines)

    def to_report(self) -> str:
        """Markdown page: title, setup paragraph, table, and failure reasons if any."""
        parts = [f"## {self.task} · {self.model}", "", self.describe_setup(), "", self.to_markdown(), ""]
        parts.append(
            "Mean over examples [bootstrap 95% CI]; higher is better for every metric but *mean score* "
            "(the mean min-max normalised attribution, the quantity plain Soft-NS/NC are sensitive to)."
        )
        if any(m.n_flat_steps for m in self.methods):
            parts.append(
                "*Flat steps*: generated steps whose scores single out no perturbable token (all zero or all "
                "equal); the metrics score them as the uniform map, and they stay in the means."
            )
        for m in self.methods:
            for reason in m.errors:
                parts.append(f"- {m.label} failed: {reason}")
        return "\n".join(parts) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _method_summary(label: str, records: list[dict[str, Any]], n_boot: int, seed: int) -> MethodSummary:
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] == "failed"]
    metrics = {k: bootstrap_ci([r["mean"][k] for r in ok], n_boot, seed=seed) for k in METRIC_KEYS} if ok else {}
    curves = {k: bootstrap_ci([r["mean"][k] for r in ok], n_boot, seed=seed) for k in CURVE_KEYS} if ok else {}
    pis = tuple(ok[0]["pis"]) if ok else ()
    errors = tuple(dict.fromkeys(r["error"] for r in failed))[:3]
    degenerate = sum(r["status"] == "degenerate" for r in records)
    flagged = [r for r in records if r["status"] != "failed" and "n_flat" in r]  # older files lack the flag
    n_flat = sum(r["n_flat"] for r in flagged) if flagged else None
    n_steps = sum(r.get("n_steps", 0) for r in flagged)
    return MethodSummary(label, len(ok), len(failed), degenerate, metrics, pis, curves, errors, n_steps, n_flat)


def _check_scored(record: dict[str, Any], path: str | Path) -> None:
    """An ``ok`` result line must carry every mean the summary reads (else the file is corrupt)."""
    mean = record.get("mean")
    if record["status"] == "ok" and not (
        isinstance(mean, dict) and all(k in mean for k in (*METRIC_KEYS, *CURVE_KEYS)) and "pis" in record
    ):
        raise InvalidInputError(
            f"{path}: the result of example {record['example_id']!r}, method {record['method']!r} has status 'ok' "
            "but no complete 'mean' or 'pis' (a corrupted or foreign line); remove that line or rerun the pair."
        )


def summarize(paths: Sequence[str | Path], *, n_boot: int = 1000, seed: int = 0, allow_mixed: bool = False) -> Summary:
    """Merge results files (e.g. the shards of one run) and summarise them."""
    if not paths:
        raise InvalidInputError("No results files given.")
    configs: dict[str, dict[str, Any]] = {}
    owner: dict[str, tuple[str, str]] = {}  # method fingerprint -> (label, config fingerprint)
    results: dict[tuple[str, str], dict[str, Any]] = {}
    duplicates = 0
    for path in paths:
        headers, records, _partial = read_results(path)
        if not headers:
            continue
        for h in headers:
            configs.setdefault(h["config_fingerprint"], h["config"])
            for label, entry in h["methods"].items():
                owner[entry["fingerprint"]] = (label, h["config_fingerprint"])
        for r in records:
            _check_scored(r, path)
            key = (r["example_id"], r["fingerprint"])
            duplicates += key in results
            results.setdefault(key, r)
    if not results:
        raise InvalidInputError(f"No results in {', '.join(str(p) for p in paths)} yet.")
    # example order, not file order: the shards of a run summarise exactly like one file (bootstrap, sums)
    results = dict(sorted(results.items(), key=lambda kv: (kv[1].get("index", 0), kv[0])))
    if len(configs) > 1 and not allow_mixed:
        first, *others = configs.values()
        raise InvalidInputError(
            f"The results were written with different options ({describe_difference(first, others[0])}); "
            "pass --allow-mixed to summarise each configuration separately."
        )

    def group(fp: str, method: str) -> str:
        label, config_fp = owner.get(fp, (method, "?"))
        return label if len(configs) == 1 else f"{label}@{config_fp[:6]}"

    groups: dict[str, list[dict[str, Any]]] = {group(fp, label): [] for fp, (label, _c) in owner.items()}
    for (_example, fp), r in results.items():
        groups.setdefault(group(fp, r["method"]), []).append(r)
    groups = {label: recs for label, recs in groups.items() if recs}
    judged = {}
    for (example, fp), r in results.items():
        if isinstance(r.get("output"), dict) and "correct" in r["output"]:
            judged.setdefault((owner.get(fp, ("", "?"))[1], example), bool(r["output"]["correct"]))
    accuracy = bootstrap_ci([float(v) for v in judged.values()], n_boot, seed=seed) if judged else None
    config = next(iter(configs.values()))
    return Summary(
        task=config["task"]["task"],
        model=config["model"]["name"],
        configs=configs,
        methods=[_method_summary(label, recs, n_boot, seed) for label, recs in groups.items()],
        accuracy=accuracy,
        n_examples=len({example for example, _fp in results}),
        files=tuple(str(p) for p in paths),
        duplicates=duplicates,
    )


def write_summary(summary: Summary, out_dir: str | Path, stem: str = "summary") -> list[Path]:
    """Write ``<stem>.csv``, ``<stem>.md`` and ``<stem>_pi_curves.png`` into ``out_dir``."""
    from .plots import plot_pi_curves

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    csv_path.write_text(summary.to_csv(), encoding="utf-8")
    md_path.write_text(summary.to_report(), encoding="utf-8")
    png = plot_pi_curves(summary, out_dir / f"{stem}_pi_curves.png")
    return [csv_path, md_path] + ([png] if png else [])
