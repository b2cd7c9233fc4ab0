r"""Rank agreement between two head scorings: Spearman's ρ, Kendall's τ-b and top-k overlap.

Implemented in numpy (scipy is not a dependency); pairs where either value is NaN are dropped.

* Spearman: Pearson correlation of the *average* ranks (ties share the mean of their ranks),
  which equals ``scipy.stats.spearmanr``.
* Kendall τ-b (``scipy.stats.kendalltau``'s default):
  :math:`\tau_b = (n_c - n_d) / \sqrt{(n_0 - n_x)(n_0 - n_y)}` with :math:`n_c, n_d` the
  concordant / discordant pairs, :math:`n_0 = n(n-1)/2` and :math:`n_x, n_y` the pairs tied in
  ``x`` / ``y``. All :math:`O(n^2)` pairs are formed at once (270 heads: 36k pairs).
* Top-k overlap: :math:`|\text{top}_k(x) \cap \text{top}_k(y)| / k`.

Both coefficients are NaN when one side is constant (no ranking to compare).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .importance import HeadImportance

ArrayLike = np.ndarray | list[float]


def _paired(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InvalidInputError(f"Cannot correlate {x.size} values with {y.size} values.")
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def average_ranks(x: ArrayLike) -> np.ndarray:
    """1-based ranks of ``x`` (ascending), ties replaced by the mean of their ranks."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, x.size])
    ranks = np.empty(x.size)
    ranks[order] = (first + (counts + 1) / 2.0)[group]
    return ranks


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rank correlation (tie-corrected); NaN for fewer than 2 pairs or a constant side."""
    x, y = _paired(x, y)
    if x.size < 2:
        return float("nan")
    rx, ry = average_ranks(x) - (x.size + 1) / 2.0, average_ranks(y) - (y.size + 1) / 2.0
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def kendall_tau(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's τ-b; NaN for fewer than 2 pairs or a constant side."""
    x, y = _paired(x, y)
    n = x.size
    if n < 2:
        return float("nan")
    i, j = np.triu_indices(n, k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n0 = n * (n - 1) / 2.0
    untied_x, untied_y = np.count_nonzero(sx), np.count_nonzero(sy)
    denom = np.sqrt(float(untied_x) * float(untied_y))
    return float((sx * sy).sum() / denom) if denom > 0 and n0 > 0 else float("nan")


def top_k_overlap(x: ArrayLike, y: ArrayLike, k: int) -> float:
    """Fraction of the ``k`` largest entries of ``x`` that are also among the ``k`` largest of ``y``."""
    x, y = _paired(x, y)
    if not 1 <= k <= x.size:
        raise InvalidInputError(f"k must be in 1..{x.size}, got {k}.")
    top = lambda v: set(np.argsort(-v, kind="stable")[:k].tolist())
    return len(top(x) & top(y)) / k


@dataclass(frozen=True)
class RankAgreement:
    """How well one head scoring ranks heads like another.

    Attributes:
        spearman: Spearman's ρ over the ``n`` heads both cover.
        kendall: Kendall's τ-b over the same heads.
        top_k: ``top_k_overlap`` at ``k``.
        k: the overlap's ``k``.
        n: the number of heads compared.
    """

    spearman: float
    kendall: float
    top_k: float
    k: int
    n: int


def rank_agreement(a: HeadImportance, b: HeadImportance, *, k: int = 10) -> RankAgreement:
    """Compare two :class:`HeadImportance` on the layers both cover (same unit)."""
    if a.unit != b.unit or a.scores.shape[1] != b.scores.shape[1]:
        raise InvalidInputError("Both scorings must be per query head (or both per KV group) of the same model.")
    common = [layer for layer in a.layers if layer in b.layers]
    if not common:
        raise InvalidInputError("The two scorings share no layer.")
    x = a.scores[[a.layers.index(layer) for layer in common]].numpy()
    y = b.scores[[b.layers.index(layer) for layer in common]].numpy()
    n = int((~(np.isnan(x) | np.isnan(y))).sum())
    k = min(k, n)
    return RankAgreement(spearman(x, y), kendall_tau(x, y), top_k_overlap(x, y, k), k, n)
