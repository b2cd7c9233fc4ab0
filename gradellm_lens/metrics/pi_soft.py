"""π-Soft-NS / π-Soft-NC: Soft-NS/NC at a controlled expected retaining probability π.

Plain Soft-NC/NS keep token ``i`` with probability ``ŝ_i`` (or ``1 - ŝ_i``), so the expected amount
of input kept depends on each method's *mean* normalised score, and a method with larger scores
"inflates" its Soft-NS (and, removing more, its Soft-NC) (Huang & Chan, arXiv 2601.03089). π-Soft fixes the mean
keep probability to ``π`` (:mod:`.retention`) and scores with the unchanged formulas (:mod:`.soft`):

* ``π-Soft-NS(π)``: keep probabilities with mean ``π`` that keep in proportion to importance;
* ``π-Soft-NC(π)``: keep probabilities with mean ``π`` that *remove* in proportion to importance.

Curves over the π grid (default ``0.1, 0.2, …, 0.9``: our choice, the paper's grid is not public) are summarised by
the normalised area ``AUC = trapezoid(values, π) / (π_max - π_min)`` in ``[0, 1]`` (a one-point grid
has AUC = its value). Higher is better for both; NS rises with π, NC falls with π.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidInputError
from ..tensor_types import PositionMask, TokenScores
from .retention import RescaleKind, Retention, retention_probs

DEFAULT_PIS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def check_pis(pis: Sequence[float]) -> tuple[float, ...]:
    """Validate a π grid: non-empty, every π strictly inside (0, 1), strictly increasing."""
    try:
        grid = tuple(float(p) for p in pis)
    except (TypeError, ValueError):
        raise InvalidInputError(f"pis must be a sequence of numbers, got {pis!r}.") from None
    if not grid:
        raise InvalidInputError("pis is empty: give at least one retaining probability π in (0, 1).")
    bad = [p for p in grid if not 0.0 < p < 1.0]
    if bad:
        raise InvalidInputError(f"Every π must lie strictly between 0 and 1; got {bad} in pis={list(grid)}.")
    if any(b <= a for a, b in zip(grid, grid[1:])):
        raise InvalidInputError(f"pis must be strictly increasing, got {list(grid)}.")
    return grid


def normalised_auc(pis: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` over ``pis`` divided by the π range (the value itself for one π)."""
    grid = check_pis(pis)
    vals = [float(v) for v in values]
    if len(vals) != len(grid):
        raise InvalidInputError(f"{len(vals)} values for {len(grid)} π values.")
    if len(grid) == 1:
        return vals[0]
    area = sum((b - a) * (u + v) / 2 for a, b, u, v in zip(grid, grid[1:], vals, vals[1:]))
    return area / (grid[-1] - grid[0])


def pi_keep_probabilities(
    norm_scores: TokenScores, perturbable: PositionMask, pis: Sequence[float], rescale: RescaleKind = "scale_clip"
) -> tuple[Retention, Retention]:
    """Keep probabilities of π-Soft-NS and π-Soft-NC (each ``[pi, pos]``) for the grid ``pis``."""
    grid = check_pis(pis)
    ns = retention_probs(norm_scores, perturbable, grid, side="ns", rescale=rescale)
    nc = retention_probs(norm_scores, perturbable, grid, side="nc", rescale=rescale)
    return ns, nc
