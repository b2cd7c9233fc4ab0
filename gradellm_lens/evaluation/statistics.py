"""Statistics of the evaluation: means with percentile-bootstrap confidence intervals, paired differences.

:class:`Estimate` is a mean with its 95% interval over ``n`` examples; the interval is the
percentile bootstrap (Efron & Tibshirani 1993): ``B`` resamples of the examples with replacement
(seeded), the 2.5th and 97.5th percentiles of the statistic on them (:func:`bootstrap_statistic`
for any statistic, :func:`bootstrap_ci` for the mean, entry-wise for curves). No interval is shown
for fewer than :data:`MIN_CI_N` examples: a percentile bootstrap of 1–4 values is not an interval
estimate.

Paired differences (:func:`paired_bootstrap_ci`, :class:`Comparison`): method A minus method B on
the examples both finished, resampling *examples*, so the per-example pairing removes the
between-example variance that marginal intervals carry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInputError

MIN_CI_N = 5
"""Fewest examples for which a confidence interval is shown."""
TOO_SMALL = "n too small"


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap confidence interval over ``n`` examples (entry-wise for curves)."""

    mean: Any
    low: Any
    high: Any
    n: int

    @property
    def has_ci(self) -> bool:
        """Whether ``n`` is large enough for the interval to be shown (:data:`MIN_CI_N`)."""
        return self.n >= MIN_CI_N

    def format(self, digits: int = 3) -> str:
        """``"0.512 [0.401, 0.630]"``, or ``"0.512 (n too small)"`` below :data:`MIN_CI_N` examples."""
        if not self.has_ci:
            return f"{self.mean:.{digits}f} ({TOO_SMALL})"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def excludes_zero(self) -> bool:
        """The interval is shown and lies entirely above or below 0 (for differences)."""
        return self.has_ci and (self.low > 0 or self.high < 0)

    def row(self) -> dict[str, Any]:
        """``mean, ci_low, ci_high, n`` for the CSV (empty CI below :data:`MIN_CI_N`)."""
        low, high = (self.low, self.high) if self.has_ci else ("", "")
        return {"mean": self.mean, "ci_low": low, "ci_high": high, "n": self.n}


def bootstrap_statistic(
    statistic: Callable[[np.ndarray], Any], n: int, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> Estimate:
    """Percentile-bootstrap CI of any statistic of ``n`` examples (Efron & Tibshirani 1993).

    ``statistic`` maps a ``[r, n]`` array of example indices (``r`` index sets) to ``r`` values
    (scalars or vectors); the estimate is its value on the examples as they are, the interval the
    percentiles of its values on ``n_boot`` resamples with replacement (seeded).
    """
    if n < 1:
        raise InvalidInputError("Cannot summarise zero values.")
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise InvalidInputError(f"Need n_boot >= 1 and 0 < level < 1, got {n_boot} and {level}.")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    values = np.asarray(statistic(idx), dtype=np.float64)
    estimate = np.asarray(statistic(np.arange(n)[None]), dtype=np.float64)[0]
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail], axis=0)
    as_out = (lambda a: float(a)) if estimate.ndim == 0 else (lambda a: tuple(float(v) for v in a))
    return Estimate(as_out(estimate), as_out(low), as_out(high), int(n))


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> Estimate:
    """Percentile-bootstrap CI of the mean over the first axis of ``values`` (scalars or curves)."""
    x = np.asarray(values, dtype=np.float64)
    return bootstrap_statistic(lambda idx: x[idx].mean(axis=1), x.shape[0], n_boot, level, seed)


def paired_bootstrap_ci(
    a: dict[str, float], b: dict[str, float], n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> Estimate | None:
    """Mean of ``a[e] - b[e]`` over the examples ``e`` in both, with its bootstrap CI over examples.

    Pairing by example: each resample draws examples, and both methods' values of a drawn example
    move together. None when no example is shared.
    """
    shared = [e for e in a if e in b]
    if not shared:
        return None
    return bootstrap_ci([a[e] - b[e] for e in shared], n_boot, level, seed)


ComparisonKind = Literal["vs_random", "vs_shuffled", "pair"]


@dataclass(frozen=True)
class Comparison:
    """Paired difference ``a - b`` per metric over the ``n`` examples both finished.

    ``kind``: ``"vs_random"`` (a row against ``random``), ``"vs_shuffled"`` (a method against its
    shuffled control) or ``"pair"`` (two methods). ``deltas`` lacks a metric no shared example has.
    """

    a: str
    b: str
    n: int
    deltas: dict[str, Estimate]
    kind: ComparisonKind = "pair"

    def cell(self, key: str) -> str:
        """``Δ [low, high]`` with ``*`` when the CI excludes 0; ``Δ (n too small)``; "–" without data."""
        e = self.deltas.get(key)
        if e is None:
            return "–"
        return e.format() + (" *" if e.excludes_zero() else "")
