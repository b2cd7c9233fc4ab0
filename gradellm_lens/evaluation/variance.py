r"""Variance components of a faithfulness estimate (examples, Bernoulli draws, maps) and the allocation they imply.

A run's reported value of a method (its mean π-Soft AUC, or the paired difference to the random
baseline or to its shuffled control) is a mean over examples of per-example estimates, and each
per-example estimate is itself a mean over ``D`` Bernoulli draws (:mod:`gradellm_lens.metrics.perturb`)
and, for a baseline, over ``K`` maps (random maps, or shuffles of the method's scores). With
:math:`y_{e,k,d}` the value of example :math:`e`, map :math:`k` and draw :math:`d`, the
two-way crossed random-effects model within examples (Searle, Casella & McCulloch 1992,
*Variance Components*, ch. 4)

.. math:: y_{e,k,d} = \mu + \alpha_e + \beta_{e,k} + \gamma_{e,d} + \varepsilon_{e,k,d}

has the draw effect :math:`\gamma` *shared by every map of a draw* (the draws are common random
numbers: every map of a step thresholds the same uniforms). For a paired difference
:math:`y = m_{e,d} - r_{e,k,d}` the method's draw noise and the baseline's shared draw noise
enter :math:`\gamma` together and partly cancel. The per-example estimate
:math:`\bar y_{e} = \frac{1}{KD}\sum_{k,d} y_{e,k,d}` has variance

.. math:: \sigma^2_\alpha + \sigma^2_\beta / K + \sigma^2_\gamma / D + \sigma^2_\varepsilon / (K D)

and the mean over :math:`E` examples that variance over :math:`E`. :func:`crossed_components`
estimates the four components from a balanced ``[example, map, draw]`` array by the ANOVA
(method-of-moments) estimators of the mean squares, pooled over examples and truncated at zero.
With one map (a method's own value) :math:`\beta` folds into :math:`\alpha` and
:math:`\varepsilon` into :math:`\gamma`; with one draw per map (values already averaged over
draws, as in a results file) :math:`\gamma` folds into :math:`\alpha` and :math:`\varepsilon` into
:math:`\beta`.

Allocation: with a cost per example :math:`c(D, K)` (CPU seconds), a budget :math:`T` buys
:math:`E = T / c` examples and a confidence-interval half-width :math:`z\sqrt{V(D,K)\,c(D,K)/T}`;
:func:`best_allocation` minimises :math:`V \cdot c` over a grid (the classic optimum of two-stage
sampling, Cochran 1977, *Sampling Techniques*, §10.6).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError

Z95 = 1.959963984540054
"""The two-sided 95% normal quantile."""


@dataclass(frozen=True)
class Components:
    """Variance components of a per-example estimate (see the module docstring).

    Attributes:
        example: :math:`\\sigma^2_\\alpha`, between examples.
        unit: :math:`\\sigma^2_\\beta`, between maps (or shuffles) of one example.
        draw: :math:`\\sigma^2_\\gamma`, between Bernoulli draws, shared by every map of a draw.
        residual: :math:`\\sigma^2_\\varepsilon`, the map × draw interaction.
        n_examples: examples the estimate pooled.
        mean: the grand mean.
    """

    example: float
    unit: float
    draw: float
    residual: float
    n_examples: int
    mean: float = float("nan")

    def variance(self, draws: int, units: int = 1) -> float:
        """Variance of one example's estimate averaged over ``draws`` draws and ``units`` maps."""
        return self.example + self.unit / units + self.draw / draws + self.residual / (units * draws)

    def half_width(self, n_examples: int, draws: int, units: int = 1, z: float = Z95) -> float:
        """Normal-approximation CI half-width of the mean over ``n_examples`` examples."""
        return z * math.sqrt(self.variance(draws, units) / n_examples)

    def shares(self, draws: int, units: int = 1) -> dict[str, float]:
        """Each component's share of :meth:`variance` at this allocation (they sum to 1)."""
        total = self.variance(draws, units)
        parts = {
            "example": self.example,
            "unit": self.unit / units,
            "draw": self.draw / draws,
            "residual": self.residual / (units * draws),
        }
        return {k: (v / total if total > 0 else float("nan")) for k, v in parts.items()}


def crossed_components(values: Sequence | np.ndarray) -> Components:
    """ANOVA estimates of the components of a balanced ``[example, map, draw]`` array.

    Each example contributes the mean squares of its ``K × D`` table (maps, draws, interaction),
    pooled over examples; the between-example component is the variance of the examples' means
    less the expected within-example part. Components are truncated at zero.

    Raises:
        InvalidInputError: not a 3-D array, fewer than two examples, or non-finite values.
    """
    y = np.asarray(values, dtype=float)
    if y.ndim != 3:
        raise InvalidInputError(f"values must be [example, map, draw], got shape {y.shape}.")
    n_e, n_k, n_d = y.shape
    if n_e < 2 or n_k < 1 or n_d < 1:
        raise InvalidInputError(f"values need at least two examples and one map and draw, got shape {y.shape}.")
    if not np.isfinite(y).all():
        raise InvalidInputError("values contain NaN or infinite entries.")
    grand = y.mean(axis=(1, 2), keepdims=True)
    by_map = y.mean(axis=2, keepdims=True)
    by_draw = y.mean(axis=1, keepdims=True)
    ms_map = n_d * ((by_map - grand) ** 2).sum() / (n_e * (n_k - 1)) if n_k > 1 else 0.0
    ms_draw = n_k * ((by_draw - grand) ** 2).sum() / (n_e * (n_d - 1)) if n_d > 1 else 0.0
    if n_k > 1 and n_d > 1:
        ms_res = ((y - by_map - by_draw + grand) ** 2).sum() / (n_e * (n_k - 1) * (n_d - 1))
    else:
        ms_res = 0.0  # not identifiable: folded into the other within-example component
    residual = ms_res
    unit = max(0.0, (ms_map - ms_res) / n_d) if n_k > 1 else 0.0
    draw = max(0.0, (ms_draw - ms_res) / n_k) if n_d > 1 else 0.0
    within = unit / n_k + draw / n_d + residual / (n_k * n_d)
    means = y.mean(axis=(1, 2))
    example = max(0.0, float(means.var(ddof=1)) - within)
    return Components(float(example), float(unit), float(draw), float(residual), n_e, float(means.mean()))


@dataclass(frozen=True)
class Allocation:
    """One point of an allocation grid: ``draws`` per map, ``units`` baseline maps, its per-example
    ``cost`` (seconds), ``variance`` (per example) and ``half_width`` after ``budget_s`` seconds."""

    draws: int
    units: int
    cost: float
    variance: float
    half_width: float
    budget_s: float

    @property
    def examples(self) -> float:
        """Examples the budget buys."""
        return self.budget_s / self.cost


def allocations(
    components: Components,
    cost: Callable[[int, int], float],
    draws: Iterable[int],
    units: Iterable[int],
    budget_s: float = 3600.0,
    z: float = Z95,
) -> list[Allocation]:
    """Every (draws, units) of the grid with its cost, variance and half-width after ``budget_s``
    seconds (``E = budget_s / cost`` examples), best (smallest half-width) first."""
    out = []
    units = list(units)
    for d in draws:
        for k in units:
            c = cost(d, k)
            v = components.variance(d, k)
            out.append(Allocation(d, k, c, v, z * math.sqrt(v * c / budget_s), budget_s))
    return sorted(out, key=lambda a: a.half_width)


def best_allocation(
    components: Components, cost: Callable[[int, int], float], draws: Iterable[int], units: Iterable[int]
) -> Allocation:
    """The (draws, units) of the grid that minimises the half-width per CPU-second (:func:`allocations`)."""
    return allocations(components, cost, draws, units)[0]
