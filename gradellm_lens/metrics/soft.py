"""Soft sufficiency and comprehensiveness (Zhao & Aletras 2023; ReAGent's generative variant).

A perturbed input ``x'`` multiplies every input-embedding element of token ``i`` by an independent
``Bernoulli(r_i)`` draw (``r_i`` = keep probability; see :mod:`.perturb`). With ``p`` the model's
next-token distribution at the last prefix position and ``ŷ`` the explained token:

* ``probability="target"`` (default, Zhao & Aletras 2023):
  ``S(x') = 1 - max(0, p(ŷ|x) - p(ŷ|x'))`` and ``C(x') = max(0, p(ŷ|x) - p(ŷ|x'))``;
* ``probability="distribution"`` (ReAGent): ``D(p, q) = Σ_v (√p_v - √q_v)² / √2`` over the whole
  vocabulary (no outer root, divided by √2, exactly as ReAGent), ``S = 1 - D`` and ``C = D``.

Normalised by the all-masked input ``x_0`` (every perturbable embedding zeroed, BOS and other
protected positions kept), ``S0 = S(x_0)``:

* ``Soft-NS = max(0, S - S0) / (1 - S0)``, ``Soft-NC = C / (1 - S0)``, both clipped to ``[0, 1]``.

``1 - S0`` is the effect of removing everything; when it is below ``eps`` (default 1e-4, as in
Zhao's code) the denominator is held at ``eps`` and the step is flagged *degenerate* (the metric is
then not meaningful: zeroing the whole input did not lower the target probability).

Plain Soft-NS keeps token ``i`` with ``r_i = ŝ_i`` (min-max normalised scores) and plain Soft-NC
with ``r_i = 1 - ŝ_i``. ReAGent reports ``log(mean_method / mean_random)``: :func:`log_ratio`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import check_choice
from ..tensor_types import PositionMask, TokenScores

ProbabilityKind = Literal["target", "distribution"]
PROBABILITY_KINDS: tuple[str, ...] = ("target", "distribution")
DEFAULT_EPSILON = 1e-4

Values = Float[Tensor, "*batch"]


def distribution_distance(p: Float[Tensor, "*batch vocab"], q: Float[Tensor, "*batch vocab"]) -> Values:
    """ReAGent's ``D(p, q) = Σ_v (√p_v - √q_v)² / √2`` over the last dimension (in ``[0, √2]``)."""
    return (p.sqrt() - q.sqrt()).pow(2).sum(-1) / math.sqrt(2.0)


def probability_drop(
    full: Float[Tensor, "vocab"],
    perturbed: Float[Tensor, "*batch vocab"],
    token_id: int,
    probability: ProbabilityKind = "target",
) -> Values:
    """The effect of a perturbation, ``C = 1 - S``: ``max(0, p(ŷ|x) - p(ŷ|x'))`` or ``D(p, p')``.

    Args:
        full: next-token probabilities of the unperturbed prefix.
        perturbed: next-token probabilities of perturbed prefixes.
        token_id: the explained token ``ŷ``.
        probability: ``"target"`` or ``"distribution"``.
    """
    check_choice("probability", probability, PROBABILITY_KINDS)
    if probability == "distribution":
        return distribution_distance(full, perturbed)
    return (full[token_id] - perturbed[..., token_id]).clamp(min=0)


def soft_ns(drop: Values, drop0: Values, eps: float = DEFAULT_EPSILON) -> Values:
    """Soft-NS from drops: with ``S = 1 - drop`` and ``S0 = 1 - drop0``,
    ``max(0, S - S0) / (1 - S0) = max(0, drop0 - drop) / drop0``, denominator held at ``>= eps``,
    clipped to ``[0, 1]``."""
    return ((drop0 - drop).clamp(min=0) / drop0.clamp(min=eps)).clamp(0.0, 1.0)


def soft_nc(drop: Values, drop0: Values, eps: float = DEFAULT_EPSILON) -> Values:
    """Soft-NC from drops: ``C / (1 - S0) = drop / drop0``, denominator held at ``>= eps``, clipped to ``[0, 1]``."""
    return (drop / drop0.clamp(min=eps)).clamp(0.0, 1.0)


def plain_soft_keep(minmax_scores: TokenScores, perturbable: PositionMask) -> Float[Tensor, "2 pos"]:
    """Keep probabilities of plain Soft-NS (row 0: ``r = ŝ``) and Soft-NC (row 1: ``r = 1 - ŝ``).

    ``minmax_scores`` are min-max normalised over ``perturbable``; other positions keep ``r = 1``.
    """
    valid = perturbable.to(minmax_scores.device)
    ones = torch.ones_like(minmax_scores)
    ns = torch.where(valid, minmax_scores, ones)
    nc = torch.where(valid, 1.0 - minmax_scores, ones)
    return torch.stack([ns, nc])


def log_ratio(method_mean: float, random_mean: float) -> float:
    """ReAGent's summary ``log(mean_method / mean_random)`` (> 0: better than random); NaN if undefined."""
    if method_mean <= 0 or random_mean <= 0:
        return float("nan")
    return math.log(method_mean / random_mean)
