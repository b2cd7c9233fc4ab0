"""π-rescaling: keep probabilities with mean ``π`` over the perturbable positions (π-Soft, Huang & Chan, arXiv 2601.03089).

Input: normalised scores ``ŝ ∈ [0, 1]`` on the ``L`` perturbable positions (:mod:`.normalise`).
Output: keep probabilities ``r_i`` (the Bernoulli parameter of every embedding element of token
``i``) with ``(1/L) Σ_i r_i = π``; non-perturbable positions keep ``r = 1``.

Both sides of the metric fill a *mass* ``m_i ∈ [0, 1]`` with mean ``t`` from ``ŝ``:

* π-Soft-NS keeps in proportion to importance: ``t = π`` and ``r = m``;
* π-Soft-NC removes in proportion to importance: ``t = 1 - π``, removal ``d = m`` and ``r = 1 - d``
  (so the mean keep probability is again ``π``).

Rescaling rules (the paper does not state its rule; both are our choices):

* ``"scale_clip"`` (default): ``m_i = min(1, c·ŝ_i)``; ``c > 0`` is found by bisection on ``log c``
  and then made exact for the clipped set found (``c = (tL - #clipped) / Σ_unclipped ŝ``).
  It reaches any ``t`` below ``#{ŝ_i > 0} / L``.
* ``"power"``: ``m_i = ŝ_i^γ``; ``γ > 0`` by bisection on ``log γ``. It reaches ``t`` strictly
  between ``#{ŝ_i = 1} / L`` and ``#{ŝ_i > 0} / L``.

Fallbacks, recorded per π in :attr:`Retention.rules`:

* ``"water_fill"`` when ``t >= #{ŝ_i > 0} / L`` (too many zero scores, common with ReLU'd maps and
  with min-max, whose minimum is exactly 0): every ``ŝ_i > 0`` gets ``m = 1`` and the remaining
  mass ``tL - #{ŝ > 0}`` is spread evenly over the zero-score tokens.
* ``"top_fill"`` (power only) when ``t <= #{ŝ_i = 1} / L``: the top tokens share ``m = tL / #{ŝ = 1}``,
  every other token gets 0.

Every rule keeps ties tied and never breaks the ordering of ``ŝ`` (weakly monotone maps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import InvalidInputError, check_choice
from ..tensor_types import PositionMask, TokenScores

RescaleKind = Literal["scale_clip", "power"]
RESCALE_KINDS: tuple[str, ...] = ("scale_clip", "power")
RetentionSide = Literal["ns", "nc"]
FALLBACK_RULES: tuple[str, ...] = ("water_fill", "top_fill")

_ITERATIONS = 200
_LOG_GAMMA_RANGE = (math.log(1e-12), 690.0)  # γ from 1e-12 to ~1e300: the whole float64-reachable range


@dataclass(frozen=True)
class Retention:
    """Keep probabilities for a grid of π values.

    Attributes:
        keep: ``[pi, pos]`` float64 keep probabilities, 1 at non-perturbable positions.
        rules: the rule that produced each row: ``"scale_clip"``, ``"power"``, or a fallback
            (``"water_fill"``, ``"top_fill"``).
    """

    keep: Float[Tensor, "pi pos"]
    rules: tuple[str, ...]

    @property
    def fallback_used(self) -> bool:
        """Whether any π needed a fallback rule."""
        return any(rule in FALLBACK_RULES for rule in self.rules)


def retention_probs(
    norm_scores: TokenScores,
    perturbable: PositionMask,
    pis: float | Sequence[float],
    *,
    side: RetentionSide = "ns",
    rescale: RescaleKind = "scale_clip",
) -> Retention:
    """Keep probabilities with mean ``π`` over ``perturbable`` for each ``π`` in ``pis``.

    Args:
        norm_scores: ``[pos]`` normalised scores in ``[0, 1]`` (see :func:`.importance_weights`).
        perturbable: ``[pos]`` boolean mask of the positions that may be perturbed (at least one).
        pis: one π or a sequence, each strictly inside ``(0, 1)``.
        side: ``"ns"`` keeps in proportion to ``ŝ``; ``"nc"`` removes in proportion to ``ŝ``.
        rescale: ``"scale_clip"`` or ``"power"``.

    Raises:
        InvalidInputError: unknown side/rescale, π outside (0, 1), scores outside [0, 1].
    """
    check_choice("side", side, ("ns", "nc"))  # keep (NS) or remove (NC) the important tokens
    check_choice("rescale", rescale, RESCALE_KINDS)
    pi = torch.as_tensor([pis] if isinstance(pis, (int, float)) else list(pis), dtype=torch.float64)
    if pi.numel() == 0 or not ((pi > 0) & (pi < 1)).all():
        raise InvalidInputError(f"Every retaining probability π must lie strictly between 0 and 1, got {pi.tolist()}.")
    valid = perturbable.to(device="cpu", dtype=torch.bool)
    if not valid.any():
        raise InvalidInputError("retention_probs needs at least one perturbable position.")
    x = norm_scores.detach().to(device="cpu", dtype=torch.float64)[valid]
    if not (torch.isfinite(x).all() and (x >= 0).all() and (x <= 1).all()):
        raise InvalidInputError("Normalised scores must lie in [0, 1]; normalise them first (importance_weights).")
    target = pi if side == "ns" else 1.0 - pi
    fill = _scale_clip if rescale == "scale_clip" else _power
    mass, rules = fill(x, target)
    keep = torch.ones(pi.numel(), valid.shape[0], dtype=torch.float64)
    keep[:, valid] = mass if side == "ns" else 1.0 - mass
    return Retention(keep=keep.clamp(0.0, 1.0), rules=rules)


def _bisect(mean_at: Callable[[Tensor], Tensor], target: Tensor, lo: Tensor, hi: Tensor, increasing: bool) -> Tensor:
    """Vectorised bisection for ``mean_at(u) = target``; returns the bracket end on the >= side."""
    for _ in range(_ITERATIONS):
        mid = (lo + hi) / 2
        below = mean_at(mid) < target
        if not increasing:
            below = ~below
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return hi if increasing else lo


def _water_fill(x: Tensor, t: Tensor) -> Tensor:
    """Positive scores -> 1, the remaining mass spread evenly over the zero-score tokens."""
    positive = x > 0
    n_zero = int((~positive).sum())
    rest = (t * x.numel() - positive.sum()).clamp(min=0) / max(n_zero, 1)
    return torch.where(positive[None, :], torch.ones_like(x)[None, :], rest[:, None].expand(-1, x.numel()))


def _scale_clip(x: Tensor, t: Tensor) -> tuple[Tensor, tuple[str, ...]]:
    n = x.numel()
    positive = x > 0
    water = t >= positive.sum() / n
    x_min = x[positive].min() if positive.any() else x.new_tensor(1.0)
    lo = torch.log(t.clamp(min=1e-300))  # c = t gives mean(min(1, t ŝ)) <= t since ŝ <= 1
    hi = torch.full_like(t, -float(torch.log(x_min))).maximum(lo) + 1e-9
    # in log space: c can exceed the float64 range when the smallest positive ŝ is tiny (subnormal)
    log_x = x.log()[None, :]  # -inf at zero scores, which then get mass exp(-inf) = 0
    log_c = _bisect(lambda u: (u[:, None] + log_x).exp().clamp(max=1).mean(1), t, lo, hi, increasing=True)
    clipped = log_c[:, None] + log_x >= 0
    unclipped = torch.where(clipped, torch.zeros_like(x)[None, :], x[None, :])
    free = unclipped.sum(1, keepdim=True)
    share = torch.where(free > 0, unclipped / torch.where(free > 0, free, 1.0), 0.0)  # ŝ_i / Σ_unclipped ŝ
    need = (t * n - clipped.sum(1))[:, None]  # the mass the unclipped tokens carry: c_exact ŝ_i = need · share_i
    mass = torch.where(clipped, torch.ones_like(x)[None, :], (need * share).clamp(max=1))
    mass = torch.where(water[:, None], _water_fill(x, t), mass)
    return mass, tuple("water_fill" if w else "scale_clip" for w in water.tolist())


def _power(x: Tensor, t: Tensor) -> tuple[Tensor, tuple[str, ...]]:
    n = x.numel()
    positive = x > 0
    top = x >= 1
    water = t >= positive.sum() / n
    topfill = (t <= top.sum() / n) & ~water
    lo = torch.full_like(t, _LOG_GAMMA_RANGE[0])
    hi = torch.full_like(t, _LOG_GAMMA_RANGE[1])

    def mean_at(log_gamma: Tensor) -> Tensor:
        return x[None, :].pow(log_gamma.exp()[:, None]).mean(1)

    log_gamma = _bisect(mean_at, t, lo, hi, increasing=False)
    mass = x[None, :].pow(log_gamma.exp()[:, None])
    top_mass = (t * n / top.sum().clamp(min=1))[:, None]
    mass = torch.where(topfill[:, None], torch.where(top[None, :], top_mass, torch.zeros_like(mass)), mass)
    mass = torch.where(water[:, None], _water_fill(x, t), mass)
    rules = tuple("water_fill" if w else "top_fill" if f else "power" for w, f in zip(water.tolist(), topfill.tolist()))
    return mass, rules
