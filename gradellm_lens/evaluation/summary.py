"""Summaries of results files: the protocol facts, mean and bootstrap 95% CI per method and metric,
paired differences between methods, π curves; their tables (Markdown, CSV, pandas) and files.
The statistics (the bootstrap, :class:`~.statistics.Estimate`, :class:`~.statistics.Comparison`)
are in :mod:`.statistics`.

Per (example, method) a metric's value is its mean over the example's steps that count (the line's
``mean``: not degenerate and, unless the run included them, not ill-conditioned). A method's score
is the mean of those values over its ``ok`` examples; the 95% confidence interval is the percentile
bootstrap over examples (Efron & Tibshirani 1993): ``B`` resamples of the examples with replacement
(seeded), the 2.5th and 97.5th percentiles of the resampled means. The π curves are averaged the
same way, point by point. No interval is shown for fewer than :data:`~.statistics.MIN_CI_N` examples ("n too
small"): a percentile bootstrap of 1–4 values is not an interval estimate.

Rows: every method, and beside each method its controls (``grad_ellm [shuffled]``,
``grad_ellm [rank]``, see :mod:`.runner`). ``random`` is itself the mean over K independent maps
per step (K is shown).

Paired differences (:class:`Comparison`): method A minus method B on the examples both finished,
with the bootstrap CI of the mean difference resampling *examples* (so the per-example pairing
removes the between-example variance that marginal CIs carry): every row against ``random``, every
method against its shuffled control, and every pair of methods.

Protocol (:class:`Protocol`), per task and model: accuracy (classification: the fraction of
unique examples whose answer matched the gold label, with its CI), the majority-class rate of the
gold labels, the share of each predicted label, the median relative drop
``ρ = (p(ŷ|x) - p(ŷ|x_∅)) / p(ŷ|x)`` over the generated steps and the number of ill-conditioned
steps, with a one-line warning when the model does not depend on the text (median ρ below the
threshold) or its answer does not follow the text (one label for nearly every example, named, or
accuracy not above the majority rate, with ρ beside it).

The Markdown report (:meth:`Summary.to_report`) opens with that warning and one verdict line per
attribution method: does it beat ``random`` and its own shuffled control (paired Δ with its CI)?
In the table the best attribution method per faithfulness metric is in bold, never a control or a
baseline. Your own data (task ``jsonl``) is titled by its file name.

Failed, degenerate and ill-conditioned pairs are counted, never averaged. *Flat* steps (scores
that single out no token, scored as the uniform map) stay in the means and are counted per method.

Several files (the shards of one run) are merged: a pair present twice is counted once, and the
pairs are taken in example order (``index``), so a sharded run summarises exactly like a
single-process one. Files or headers with different common options are refused unless
``allow_mixed``, in which case each configuration's rows are kept apart (labels get an
``@<fingerprint>`` suffix).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInputError, MissingPackageError, check_choice, unknown_name_error
from .runner import BASELINES, CURVE_KEYS, METRIC_KEYS
from .statistics import MIN_CI_N, Comparison, ComparisonKind, Estimate, bootstrap_ci, paired_bootstrap_ci
from .store import describe_difference, read_results

METRIC_NAMES: dict[str, str] = {
    "soft_ns": "Soft-NS",
    "soft_nc": "Soft-NC",
    "auc_pi_ns": "π-Soft-NS AUC",
    "auc_pi_nc": "π-Soft-NC AUC",
    "mean_score": "mean score",
}
FAITHFULNESS_KEYS: tuple[str, ...] = ("soft_ns", "soft_nc", "auc_pi_ns", "auc_pi_nc")
PAIRED_KEYS: tuple[str, ...] = ("auc_pi_ns", "auc_pi_nc")
DOMINANT_SHARE = 0.9
"""A predicted label this frequent means the model answers (nearly) the same whatever the text."""
NO_LABEL = "(none)"
"""The predicted label of an answer that names no label word."""


@dataclass(frozen=True)
class MethodSummary:
    """One row of the table: a method (configuration), or one of its controls, over the examples it finished.

    ``n_flat_steps`` and ``n_ill_conditioned_steps`` of the ``n_steps`` generated steps (of the
    pairs that record the flag) had flat scores / ρ below the threshold; None when no pair records
    it. ``n_ill_conditioned`` pairs had no step left to average. A control row (``control`` set,
    ``method`` its method's label) has only its metrics. ``per_example`` maps each ``ok`` example
    to its mean metrics (what the paired comparisons pair); ``random_maps`` is random's K.
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
    n_ill_conditioned_steps: int | None = None
    n_ill_conditioned: int = 0
    control: str | None = None
    method: str = ""
    random_maps: int | None = None
    per_example: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def flat_cell(self) -> str:
        """``"flat/steps"``, or "–" when the results predate the per-step flat flag."""
        return "–" if self.n_flat_steps is None else f"{self.n_flat_steps}/{self.n_steps}"

    def ill_cell(self) -> str:
        """``"ill-conditioned/steps"``, or "–" when the results predate the conditioning fields."""
        return "–" if self.n_ill_conditioned_steps is None else f"{self.n_ill_conditioned_steps}/{self.n_steps}"


@dataclass(frozen=True)
class Protocol:
    """What the model did on the task: does it read the text at all? (see the module docstring).

    Attributes:
        n_examples: unique examples.
        accuracy: classification accuracy with its CI (None for generation tasks).
        majority_rate: share of the most frequent gold label (None for generation tasks).
        label_shares: predicted label -> share of the judged examples (``"(none)"``: no label word).
        median_rho: median ρ over the generated steps (None when the results do not record ρ).
        n_steps: generated steps of the unique examples.
        n_ill_conditioned: of those, steps with ρ below ``min_rho``.
        min_rho: the run's threshold (None when not recorded).
        prompt_format: as recorded in the results header.
        perturb: as recorded in the results header.
    """

    n_examples: int
    accuracy: Estimate | None
    majority_rate: float | None
    label_shares: dict[str, float]
    median_rho: float | None
    n_steps: int
    n_ill_conditioned: int
    min_rho: float | None
    prompt_format: str | None
    perturb: str | None

    def warning(self) -> str | None:
        """One line when the model does not depend on the text, or its answer not on the text's label; else None.

        The headline follows ρ: below the threshold, the model does not depend on the text (masking all
        of it does not lower p(ŷ) by that share); at or above it, masking the text does move the prediction, so a
        constant answer or chance accuracy means the answer does not follow the text's label (the
        attributions then explain that answer). The constant answer is named, and ρ shown beside it.
        """
        constant = None
        if self.label_shares and self.n_examples > 1:
            label, share = max(self.label_shares.items(), key=lambda kv: kv[1])
            if share >= DOMINANT_SHARE and label == NO_LABEL:
                constant = f"its answer is none of the label words for {share:.0%} of the examples"
            elif share >= DOMINANT_SHARE:
                constant = f"it answers {label!r} for {share:.0%} of the examples"
        chance = None
        if self.accuracy is not None and self.majority_rate is not None and self.accuracy.mean <= self.majority_rate:
            chance = f"accuracy {self.accuracy.mean:.3f} is not above the majority rate {self.majority_rate:.3f}"
        answers = [r for r in (constant, chance) if r is not None]
        known = self.median_rho is not None and self.min_rho is not None
        if known and self.median_rho < self.min_rho:
            rho = (
                f"median ρ {self.median_rho:.3f} is below {self.min_rho:g}: masking all of the text does not lower "
                f"p(ŷ) by {self.min_rho:.0%}"
            )
            return "Warning: the model does not depend on the text (" + "; ".join([rho, *answers]) + ")."
        if not answers:
            return None
        if known:
            rho = f"median ρ {self.median_rho:.3f} ≥ {self.min_rho:g}: masking the text does move p(ŷ)"
            return "Warning: the model's answer does not follow the text (" + "; ".join([*answers, rho]) + ")."
        return "Warning: the model may not depend on the text (" + "; ".join(answers) + ")."

    def describe(self) -> str:
        """One paragraph: accuracy vs majority, predicted labels, median ρ, ill-conditioned steps."""
        parts = []
        if self.accuracy is not None:
            parts.append(f"accuracy {self.accuracy.format()}")
        if self.majority_rate is not None:
            parts.append(f"majority-class rate {self.majority_rate:.3f}")
        if self.label_shares:
            shares = ", ".join(f"{label} {share:.0%}" for label, share in self.label_shares.items())
            parts.append(f"predicted labels: {shares}")
        if self.median_rho is not None:
            parts.append(f"median ρ {self.median_rho:.3f}")
            threshold = f" (ρ < {self.min_rho:g})" if self.min_rho is not None else ""
            parts.append(f"ill-conditioned steps {self.n_ill_conditioned}/{self.n_steps}{threshold}")
        return "; ".join(parts) + "." if parts else ""

    def rows(self) -> list[dict[str, Any]]:
        """CSV rows (method ``(task)``): accuracy, majority rate, label shares, median ρ, ill-conditioned steps."""
        out = []
        if self.accuracy is not None:
            out.append({"metric": "accuracy", **self.accuracy.row()})
        if self.majority_rate is not None:
            out.append({"metric": "majority_rate", "mean": self.majority_rate, "n": self.n_examples})
        for label, share in self.label_shares.items():
            out.append({"metric": f"predicted_share:{label}", "mean": share, "n": self.n_examples})
        if self.median_rho is not None:
            out.append({"metric": "median_rho", "mean": self.median_rho, "n": self.n_steps})
            out.append({"metric": "n_ill_conditioned_steps", "mean": self.n_ill_conditioned, "n": self.n_steps})
        return [{"method": "(task)", "ci_low": "", "ci_high": "", **row} for row in out]


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
    protocol: Protocol | None = None
    comparisons: list[Comparison] = field(default_factory=list)

    def row(self, label: str) -> MethodSummary:
        """The row called ``label`` (unknown labels raise with a suggestion)."""
        for m in self.methods:
            if m.label == label:
                return m
        raise unknown_name_error("method row", label, [m.label for m in self.methods])

    def comparison(self, a: str, b: str) -> Comparison | None:
        """The paired difference ``a - b`` (None when it was not computed)."""
        return next((c for c in self.comparisons if (c.a, c.b) == (a, b)), None)

    def rows(self) -> list[dict[str, Any]]:
        """Long-format rows (method, metric, mean, ci_low, ci_high, n) for the CSV; CIs empty below n = 5."""
        out = self.protocol.rows() if self.protocol is not None else []
        for m in self.methods:
            out += [{"method": m.label, "metric": key, **e.row()} for key, e in m.metrics.items()]
            if m.control is not None:
                continue
            counts = {"n_failed": m.n_failed, "n_degenerate": m.n_degenerate, "n_ill_conditioned": m.n_ill_conditioned}
            out += [_count_row(m.label, key, value) for key, value in counts.items()]
            for key, value in (
                ("n_flat_steps", m.n_flat_steps),
                ("n_ill_conditioned_steps", m.n_ill_conditioned_steps),
            ):
                if value is not None:
                    out.append(_count_row(m.label, key, value, m.n_steps))
        return out

    def paired_rows(self) -> list[dict[str, Any]]:
        """Long-format rows (a, b, metric, mean, ci_low, ci_high, n) of the paired differences ``a - b``."""
        return [{"a": c.a, "b": c.b, "metric": key, **e.row()} for c in self.comparisons for key, e in c.deltas.items()]

    def to_csv(self, table: Literal["methods", "paired"] = "methods") -> str:
        """The rows of :meth:`rows` (``"methods"``) or :meth:`paired_rows` (``"paired"``) as CSV."""
        rows, names = self._table(table)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def to_dataframe(self, table: Literal["methods", "paired"] = "methods"):
        """The CSV's rows as a pandas ``DataFrame`` (empty CIs become NaN); needs pandas.

        ``"methods"``: one row per (method or control, metric), plus the task's protocol facts
        under method ``"(task)"``; ``"paired"``: one row per (a, b, metric) paired difference.
        """
        try:
            import pandas as pd
        except ImportError:
            raise MissingPackageError("Summary.to_dataframe needs pandas: pip install pandas") from None
        rows, names = self._table(table)
        frame = pd.DataFrame(rows, columns=names)
        for column in ("mean", "ci_low", "ci_high", "n"):
            frame[column] = pd.to_numeric(frame[column].replace("", np.nan))
        return frame

    def _table(self, table: str) -> tuple[list[dict[str, Any]], list[str]]:
        if check_choice("table", table, ("methods", "paired")) == "methods":
            return self.rows(), ["method", "metric", "mean", "ci_low", "ci_high", "n"]
        return self.paired_rows(), ["a", "b", "metric", "mean", "ci_low", "ci_high", "n"]

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
            f"normalise {metrics.get('normalise', 'max')}",
            f"probability {metrics['probability']}",
            f"perturb {config['perturb']}",
        ]
        conditioning = config.get("conditioning")
        if conditioning is not None:
            kept = "included in" if conditioning["include_ill_conditioned"] else "left out of"
            parts.append(f"ill-conditioned steps (ρ < {conditioning['min_rho']:g}) {kept} the means")
        maps = {m.random_maps for m in self.methods if m.random_maps}
        if maps:
            parts.append(f"random = mean over {'/'.join(str(k) for k in sorted(maps))} independent maps per step")
        if task["kind"] == "generation":
            parts.insert(1, f"≤ {task['max_new_tokens']} generated tokens per example")
        if len(self.configs) > 1:
            parts.append(f"{len(self.configs)} configurations (labels suffixed @fingerprint)")
        return "; ".join(parts) + "."

    def to_markdown(self) -> str:
        """The table: mean [95% CI] per row and metric; per faithfulness metric the best attribution
        method's mean in bold (never a control's or a baseline's: those are references, not candidates)."""
        keys = list(METRIC_KEYS)
        candidates = [m for m in self.methods if _is_candidate(m)]
        best = {
            k: max((m.metrics[k].mean for m in candidates if k in m.metrics), default=None) for k in FAITHFULNESS_KEYS
        }
        head = (
            "| method | n | failed | " + " | ".join(METRIC_NAMES[k] for k in keys) + " | ill-conditioned | flat steps |"
        )
        lines = [head, "|" + "---|" * (5 + len(keys))]
        for m in self.methods:
            cells = []
            for k in keys:
                e = m.metrics.get(k)
                text = "–" if e is None else e.format()
                if e is not None and _is_candidate(m) and best.get(k) is not None and e.mean == best[k]:
                    text = f"**{e.mean:.3f}**" + text[len(f"{e.mean:.3f}") :]
                cells.append(text)
            counts = ("", "", "") if m.control is not None else (m.n_failed, m.ill_cell(), m.flat_cell())
            lines.append(
                f"| {m.label} | {m.n_ok} | {counts[0]} | " + " | ".join(cells) + f" | {counts[1]} | {counts[2]} |"
            )
        return "\n".join(lines)

    def paired_markdown(self) -> str:
        """The paired differences: each row vs random, each method vs its shuffled control, method vs method."""
        sections = [
            ("vs random", [c for c in self.comparisons if c.kind == "vs_random"]),
            ("vs its shuffled control", [c for c in self.comparisons if c.kind == "vs_shuffled"]),
            ("method vs method", [c for c in self.comparisons if c.kind == "pair"]),
        ]
        names = " | ".join(f"Δ {METRIC_NAMES[k]}" for k in PAIRED_KEYS)
        parts = []
        for title, rows in sections:
            if not rows:
                continue
            lines = [f"**Paired differences, {title}** (A − B over the examples both finished)", "",
                     f"| A | B | n | {names} |", "|---|---|---|" + "---|" * len(PAIRED_KEYS)]  # fmt: skip
            lines += [f"| {c.a} | {c.b} | {c.n} | " + " | ".join(c.cell(k) for k in PAIRED_KEYS) + " |" for c in rows]
            parts.append("\n".join(lines))
        return "\n\n".join(parts)

    @property
    def title(self) -> str:
        """``"sst2 · smollm2-135m-instruct"``; your own data is named by its file (``"reviews.jsonl · ..."``)."""
        task = next(iter(self.configs.values()))["task"]
        data = task.get("data")
        name = data["file"] if self.task == "jsonl" and isinstance(data, dict) and data.get("file") else self.task
        return f"{name} · {self.model}"

    def verdicts(self) -> list[str]:
        """A heading line, then one line per attribution method: does it beat ``random``, and its own
        shuffled control? (:func:`_verdict`; empty when nothing was compared)."""
        lines = []
        for m in self.methods:
            if not _is_candidate(m):
                continue
            against = [
                _verdict(self.comparison(m.label, "random"), "random"),
                _verdict(self.comparison(m.label, f"{m.label} [shuffled]"), "its shuffled control"),
            ]
            if any(against):
                lines.append(f"- **{m.label}** (n = {m.n_ok}): " + "; ".join(v for v in against if v) + ".")
        if not lines:
            return []
        names = " / ".join(METRIC_NAMES[k] for k in PAIRED_KEYS)
        head = (
            f"Verdict: Δ = method − B on {names}, mean [paired 95% CI over the examples both finished; none below "
            f"n = {MIN_CI_N}]; a method *beats* B where the CI lies above 0."
        )
        return [head, "", *lines]

    def to_report(self) -> str:
        """Markdown page: title, the protocol's warning, one verdict line per method, setup, protocol,
        table, paired differences, notes."""
        parts = [f"## {self.title}", ""]
        warning = self.protocol.warning() if self.protocol is not None else None
        if warning is not None:
            parts += [f"{warning}", ""]
        if verdicts := self.verdicts():
            parts += [*verdicts, ""]
        parts += [self.describe_setup(), ""]
        if self.protocol is not None:
            parts += [f"Protocol: {self.protocol.describe()}", ""]
        parts += [self.to_markdown(), ""]
        parts.append(
            "Mean over examples [bootstrap 95% CI; none below n = 5]; higher is better for every metric but "
            "*mean score* (the mean min-max normalised attribution, the quantity plain Soft-NS/NC are sensitive to). "
            "*[shuffled]*: the method's own scores randomly permuted over the perturbable tokens (same masks); "
            "*[rank]*: π-Soft on rank-normalised scores. *ill-conditioned*: steps with ρ below the threshold."
        )
        if any(m.n_flat_steps for m in self.methods):
            parts.append(
                "*Flat steps*: generated steps whose scores single out no perturbable token (all zero or all "
                "equal); the metrics score them as the uniform map, and they stay in the means."
            )
        paired = self.paired_markdown()
        if paired:
            parts += ["", paired, "", "`*`: the paired 95% CI excludes 0."]
        for m in self.methods:
            for reason in m.errors:
                parts.append(f"- {m.label} failed: {reason}")
        return "\n".join(parts) + "\n"


def _is_candidate(m: MethodSummary) -> bool:
    """An attribution method's own row: not a control, not a chance-level baseline (random, uniform)."""
    return m.control is None and m.label.split("@")[0].split("+")[0].split(":")[0] not in BASELINES


def _verdict(c: Comparison | None, what: str) -> str:
    """``"beats random (Δ +0.210 [+0.102, +0.311] / +0.095 [+0.010, +0.200])"``, or "" when not compared.

    The Δ are those of :data:`PAIRED_KEYS`, in order; A beats B on a metric whose CI lies above 0.
    """
    if c is None or not c.deltas:
        return ""
    deltas = " / ".join(
        f"{e.mean:+.3f} [{e.low:+.3f}, {e.high:+.3f}]" if e.has_ci else f"{e.mean:+.3f}" for e in c.deltas.values()
    )
    shown = [k for k, e in c.deltas.items() if e.has_ci]
    above = [METRIC_NAMES[k] for k in shown if c.deltas[k].low > 0]
    below = [METRIC_NAMES[k] for k in shown if c.deltas[k].high < 0]
    if not shown:
        head = f"too few examples to tell against {what}"
    elif len(above) == len(c.deltas):
        head = f"beats {what}"
    elif above or below:
        bits = [f"beats {what} on {' and '.join(above)}"] if above else []
        bits += [f"is below {'it' if above else what} on {' and '.join(below)}"] if below else []
        head = ", ".join(bits)
    else:
        head = f"does not beat {what}"
    return f"{head} (Δ {deltas})"


def _count_row(label: str, metric: str, value: int, n: int | str = "") -> dict[str, Any]:
    return {"method": label, "metric": metric, "mean": value, "ci_low": "", "ci_high": "", "n": n}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _estimates(values: dict[str, dict[str, Any]], keys: Sequence[str], n_boot: int, seed: int) -> dict[str, Estimate]:
    """Bootstrap estimate per key over the examples of ``values`` (example -> metric dict)."""
    return {k: bootstrap_ci([v[k] for v in values.values()], n_boot, seed=seed) for k in keys} if values else {}


def _method_rows(label: str, records: list[dict[str, Any]], n_boot: int, seed: int) -> list[MethodSummary]:
    """The method's row, then one row per control it recorded."""
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] == "failed"]
    scored = [r for r in records if r["status"] != "failed"]
    flagged = [r for r in scored if "n_flat" in r]  # older files lack the flag
    conditioned = [r for r in scored if "n_ill_conditioned" in r]
    pis = tuple(ok[0]["pis"]) if ok else ()
    per_example = {r["example_id"]: r["mean"] for r in ok}
    main = MethodSummary(
        label=label,
        n_ok=len(ok),
        n_failed=len(failed),
        n_degenerate=sum(r["status"] == "degenerate" for r in records),
        metrics=_estimates(per_example, METRIC_KEYS, n_boot, seed),
        pis=pis,
        curves=_estimates(per_example, CURVE_KEYS, n_boot, seed),
        errors=tuple(dict.fromkeys(r["error"] for r in failed))[:3],
        n_steps=sum(r.get("n_steps", 0) for r in flagged),
        n_flat_steps=sum(r["n_flat"] for r in flagged) if flagged else None,
        n_ill_conditioned_steps=sum(r["n_ill_conditioned"] for r in conditioned) if conditioned else None,
        n_ill_conditioned=sum(r["status"] == "ill_conditioned" for r in records),
        method=label,
        random_maps=next((r["random_maps"] for r in ok if "random_maps" in r), None),
        per_example=per_example,
    )
    rows = [main]
    for control in dict.fromkeys(c for r in ok for c in r.get("controls", {})):
        values = {r["example_id"]: r["controls"][control] for r in ok if r.get("controls", {}).get(control)}
        rows.append(
            MethodSummary(
                label=f"{label} [{control}]", n_ok=len(values), n_failed=0, n_degenerate=0,
                metrics=_estimates(values, METRIC_KEYS, n_boot, seed), pis=pis,
                curves=_estimates(values, CURVE_KEYS, n_boot, seed), control=control, method=label,
                per_example=values,
            )
        )  # fmt: skip
    return rows


def _compare(a: MethodSummary, b: MethodSummary, kind: ComparisonKind, n_boot: int, seed: int) -> Comparison:
    deltas = {}
    for key in PAIRED_KEYS:
        estimate = paired_bootstrap_ci(
            {e: v[key] for e, v in a.per_example.items()}, {e: v[key] for e, v in b.per_example.items()}, n_boot,
            seed=seed,
        )  # fmt: skip
        if estimate is not None:
            deltas[key] = estimate
    return Comparison(a.label, b.label, len(set(a.per_example) & set(b.per_example)), deltas, kind)


def _comparisons(rows: list[MethodSummary], n_boot: int, seed: int) -> list[Comparison]:
    """Every row vs random, every method vs its shuffled control, every pair of other methods (row order)."""
    methods = [m for m in rows if m.control is None and m.label != "random"]
    random = [m for m in rows if m.label == "random"]
    shuffled = {m.method: m for m in rows if m.control == "shuffled"}
    out = [_compare(m, r, "vs_random", n_boot, seed) for r in random for m in rows if m is not r]
    out += [_compare(m, shuffled[m.label], "vs_shuffled", n_boot, seed) for m in methods if m.label in shuffled]
    out += [_compare(a, b, "pair", n_boot, seed) for a, b in combinations(methods, 2)]
    return out


def _protocol(results: dict[tuple[str, str], dict[str, Any]], config: dict[str, Any], accuracy) -> Protocol:
    """Majority rate, label shares and ρ of the unique examples (a finished record of each, if any)."""
    first: dict[str, dict[str, Any]] = {}
    for (example, _fp), r in results.items():
        if example not in first or (first[example]["status"] == "failed" and r["status"] != "failed"):
            first[example] = r
    judged = [r["output"] for r in first.values() if isinstance(r.get("output"), dict) and "correct" in r["output"]]
    gold = Counter(o["gold"] for o in judged if o.get("gold") is not None)
    predicted = Counter(NO_LABEL if o.get("predicted") is None else o["predicted"] for o in judged)
    steps = [s for r in first.values() for s in r.get("steps", []) if "rho" in s]
    return Protocol(
        n_examples=len(first),
        accuracy=accuracy,
        majority_rate=max(gold.values()) / sum(gold.values()) if gold else None,
        label_shares={label: k / len(judged) for label, k in predicted.most_common()},
        median_rho=statistics.median(s["rho"] for s in steps) if steps else None,
        n_steps=len(steps),
        n_ill_conditioned=sum(s.get("ill_conditioned", False) for s in steps),
        min_rho=(config.get("conditioning") or {}).get("min_rho"),
        prompt_format=config["task"].get("prompt_format"),
        perturb=config.get("perturb"),
    )


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
    # method fingerprint -> (label, config fingerprint); reading checked that every result line's
    # fingerprint is its method's in a header of its file (recomputed from the recorded configs)
    owner: dict[str, tuple[str, str]] = {}
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

    def group(fp: str) -> str:
        label, config_fp = owner[fp]
        return label if len(configs) == 1 else f"{label}@{config_fp[:6]}"

    groups: dict[str, list[dict[str, Any]]] = {group(fp): [] for fp in owner}
    for (_example, fp), r in results.items():
        groups[group(fp)].append(r)
    rows = [row for label, recs in groups.items() if recs for row in _method_rows(label, recs, n_boot, seed)]
    judged = {}
    for (example, fp), r in results.items():
        if isinstance(r.get("output"), dict) and "correct" in r["output"]:
            judged.setdefault((owner[fp][1], example), bool(r["output"]["correct"]))
    accuracy = bootstrap_ci([float(v) for v in judged.values()], n_boot, seed=seed) if judged else None
    config = next(iter(configs.values()))
    return Summary(
        task=config["task"]["task"],
        model=config["model"]["name"],
        configs=configs,
        methods=rows,
        accuracy=accuracy,
        n_examples=len({example for example, _fp in results}),
        files=tuple(str(p) for p in paths),
        duplicates=duplicates,
        protocol=_protocol(results, config, accuracy) if len(configs) == 1 else None,
        comparisons=_comparisons(rows, n_boot, seed) if len(configs) == 1 else [],
    )


def check_stem(stem: str) -> str:
    """``stem`` if it is a plain file-name stem: not empty, no folder, not hidden (a leading ``.``)."""
    if not isinstance(stem, str) or not stem.strip() or stem.startswith(".") or Path(stem).name != stem:
        raise InvalidInputError(
            f"The summary stem must be a plain file name (not empty, no folder, no leading '.'), got {stem!r}."
        )
    return stem


def write_summary(summary: Summary, out_dir: str | Path, stem: str = "summary") -> list[Path]:
    """Write ``<stem>.csv``, ``<stem>_paired.csv``, ``<stem>.md`` and ``<stem>_pi_curves.png`` into ``out_dir``."""
    from ..viz.plots import plot_pi_curves

    check_stem(stem)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, paired_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}_paired.csv", out_dir / f"{stem}.md"
    csv_path.write_text(summary.to_csv(), encoding="utf-8")
    paired_path.write_text(summary.to_csv("paired"), encoding="utf-8")
    md_path.write_text(summary.to_report(), encoding="utf-8")
    plotted = [m for m in summary.methods if m.curves and m.control is None]
    if not plotted:
        return [csv_path, paired_path, md_path]
    labels = [f"{m.label} (n={m.n_ok})" for m in plotted]
    curves = {label: (m.pis, m.curves["pi_ns"].mean, m.curves["pi_nc"].mean) for label, m in zip(labels, plotted)}
    intervals = {
        label: ((m.curves["pi_ns"].low, m.curves["pi_ns"].high), (m.curves["pi_nc"].low, m.curves["pi_nc"].high))
        for label, m in zip(labels, plotted)
    }
    png = out_dir / f"{stem}_pi_curves.png"
    plot_pi_curves(curves, png, intervals=intervals, title=summary.title)
    return [csv_path, paired_path, md_path, png]
