r"""Cumulative ablation curves: remove heads in a given order and track the target's drop.

For a head order :math:`(h_1, h_2, \dots, h_N)` (e.g. :meth:`HeadImportance.ranking` of
Grad-ELLM's head importance, of the output-norm baseline, or :func:`random_head_order`) and counts
:math:`0 = k_0 < k_1 < \dots`, the curve is

.. math::

    D(k) = y_{\text{clean}} - y\big(\text{ablate } \{h_1, \dots, h_k\}\big)

(:class:`~.effects.AblationEffect` ``score_drop``; ``prob_drop`` alongside), plotted against the
fraction :math:`k / N` of heads removed. :func:`curve_auc` is the trapezoidal area under
:math:`D` over that fraction axis (:math:`x \in [0, k_{\max}/N]`): an order whose first heads
matter most rises fastest and has the largest AUC. All points of one curve share one clean forward
and are evaluated as batch rows (:func:`~.effects.ablation_effects`).

Controls: :func:`random_head_order` (any heads) and :func:`layer_matched_order` (random heads from
the same layers as an order's first ``k``: whether the *heads* matter, beyond their layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError
from ..targets import Step, Target
from ..tensor_types import TokenIds
from .ablation import Ablation, HeadIndex
from .effects import AblationEffect, Choices, ablation_effects


def random_head_order(n_layers: int, n_heads: int, seed: int, layers: Sequence[int] | None = None) -> list[HeadIndex]:
    """All ``(layer, head)`` pairs of ``layers`` (default: all) in a seeded random order."""
    layers = list(range(n_layers)) if layers is None else list(layers)
    heads = [(layer, h) for layer in layers for h in range(n_heads)]
    perm = torch.randperm(len(heads), generator=torch.Generator().manual_seed(seed))
    return [heads[int(i)] for i in perm]


def layer_matched_order(order: Sequence[HeadIndex], n_heads: int, k: int, seed: int) -> list[HeadIndex]:
    """The control of a head order's first ``k`` heads: random heads from the **same layers**.

    Head ``i`` of the result is drawn uniformly from the heads of layer ``order[i][0]`` that are
    neither among ``order[:k]`` nor drawn before; when that layer has no such head left, from its
    heads in ``order[:k]`` not drawn before. So every prefix has the layer profile of the same
    prefix of ``order`` (ablating it removes as many heads from each layer) but, where the layer
    allows, other heads. Seeded; with one ``k`` for a whole curve, ablating the first ``j`` heads of
    the control is the control of ablating ``order[:j]``.
    """
    k = min(k, len(order))
    if any(not 0 <= h < n_heads for _, h in order[:k]):
        raise InvalidInputError(f"A head index in the order is outside 0..{n_heads - 1}.")
    generator = torch.Generator().manual_seed(seed)
    chosen, used, out = set(order[:k]), set(), []
    for layer, _ in order[:k]:
        free = [(layer, h) for h in range(n_heads) if (layer, h) not in used]
        others = [head for head in free if head not in chosen]
        pool = others or free
        pick = pool[int(torch.randint(len(pool), (1,), generator=generator))]
        used.add(pick)
        out.append(pick)
    return out


def default_counts(n_heads_total: int) -> list[int]:
    """``0, 1, 2, 4, 8, ...`` (powers of two) and the total: dense where single heads matter."""
    counts, k = [0], 1
    while k < n_heads_total:
        counts.append(k)
        k *= 2
    return [*counts, n_heads_total]


def cumulative_ablations(order: Sequence[HeadIndex], counts: Sequence[int], **fields: Any) -> list[Ablation]:
    """``Ablation(heads=order[:k], **fields)`` for each ``k`` in ``counts`` (query heads by default)."""
    bad = [k for k in counts if not 0 <= k <= len(order)]
    if bad:
        raise InvalidInputError(f"Count {bad[0]} is outside 0..{len(order)} (the order's length).")
    return [Ablation(heads=tuple(order[:k]), **fields) for k in counts]


@dataclass(frozen=True)
class AblationCurve:
    """One cumulative-ablation curve.

    Attributes:
        counts: number of heads ablated at each point.
        fractions: ``counts / n_total``.
        effects: the :class:`AblationEffect` at each point.
    """

    counts: tuple[int, ...]
    fractions: tuple[float, ...]
    effects: tuple[AblationEffect, ...]

    @property
    def score_drops(self) -> np.ndarray:
        return np.array([e.score_drop for e in self.effects])

    @property
    def prob_drops(self) -> np.ndarray:
        return np.array([e.prob_drop for e in self.effects])

    def auc(self, what: str = "score") -> float:
        """Area under the ``"score"`` (default) or ``"prob"`` drop curve over the fraction axis."""
        if what not in ("score", "prob"):
            raise InvalidInputError(f"auc(what=...) takes 'score' or 'prob', got {what!r}.")
        return curve_auc(self.fractions, self.score_drops if what == "score" else self.prob_drops)


def curve_auc(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoidal area under ``values`` over increasing ``fractions``."""
    x, y = np.asarray(fractions, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.shape != y.shape or x.size < 2 or np.any(np.diff(x) < 0):
        raise InvalidInputError("curve_auc needs at least two points with increasing fractions.")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def ablation_curve(
    model,
    tokens: TokenIds,
    target: Target | Sequence[Step],
    order: Sequence[HeadIndex],
    counts: Sequence[int] | None = None,
    *,
    n_total: int | None = None,
    choices: Choices | None = None,
    batch_size: int = 16,
    **fields: Any,
) -> AblationCurve:
    """Ablate ``order[:k]`` for each ``k`` in ``counts`` (default :func:`default_counts`).

    Args:
        n_total: denominator of the fractions (default ``len(order)``).
        choices: per label, token id(s); the winning label is recorded per point (accuracy curves).
        **fields: further :class:`Ablation` fields (``mode=``, ``reference=`` ...).
    """
    counts = default_counts(len(order)) if counts is None else sorted(set(counts))
    n_total = len(order) if n_total is None else n_total
    effects = ablation_effects(
        model, tokens, target, cumulative_ablations(order, counts, **fields), choices=choices, batch_size=batch_size
    )
    return AblationCurve(tuple(counts), tuple(k / n_total for k in counts), tuple(effects))
