"""Importance weights: raw attribution scores mapped to ``ŝ ∈ [0, 1]`` over the perturbable positions.

The perturbation metrics (Soft-NC/NS, π-Soft) turn ``ŝ`` into keep probabilities, so here a map
that singles out no token means "every token equally important" (``ŝ ≡ 1``). This differs from
:func:`gradellm_lens.aggregate.normalise`, which rescales scores for display and comparison and
sends such a map to 0.

With ``P`` the perturbable positions (see :mod:`.positions`) and ``s_i`` the raw scores:

* ``"max"`` (π-Soft default, arXiv 2601.03089): ``ŝ_i = s_i / max_{j∈P} s_j``; needs
  ``s_i >= 0`` on ``P``.
* ``"minmax"`` (plain Soft-NC/NS, Zhao & Aletras 2023): ``ŝ_i = (s_i - min_P s) / (max_P s - min_P s)``;
  any sign.
* ``"rank"`` (a quantile map; our alternative, not from the papers): ``ŝ_i = #{j∈P : s_j <= s_i} / |P|``, the
  empirical CDF: the top token gets 1, ties stay tied, magnitudes are ignored.

A map without information (all scores 0 under ``"max"``, all equal under ``"minmax"``) gives the
uniform ``ŝ ≡ 1``. Positions outside ``P`` get 0: they are never perturbed.
All three maps are invariant to multiplying the scores by a positive constant, so every metric
built on them is too. Computed in float64.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import InvalidInputError, check_choice
from ..numerics import masked_minmax
from ..tensor_types import PositionMask, TokenScores

NormaliseKind = Literal["max", "minmax", "rank"]
NORMALISE_KINDS: tuple[str, ...] = ("max", "minmax", "rank")


def importance_weights(scores: TokenScores, perturbable: PositionMask, how: NormaliseKind = "max") -> TokenScores:
    """The importance weights ``ŝ ∈ [0, 1]`` of ``scores`` over the ``perturbable`` positions (0 elsewhere), float64.

    A flat map (all 0 under ``"max"``, all equal under ``"minmax"``) gives ``ŝ ≡ 1`` on the
    perturbable positions: no token is singled out, so all are equally important. (For display,
    :func:`gradellm_lens.aggregate.normalise` instead sends a flat map to 0.)

    Args:
        scores: ``[pos]`` finite raw scores.
        perturbable: ``[pos]`` boolean mask with at least one True.
        how: ``"max"``, ``"minmax"`` or ``"rank"`` (see the module docstring).

    Raises:
        InvalidInputError: unknown ``how``, non-finite scores, or negative scores under ``"max"``.
    """
    check_choice("how", how, NORMALISE_KINDS)
    x = scores.detach().to(device="cpu", dtype=torch.float64)
    valid = perturbable.to(device="cpu", dtype=torch.bool)
    if not torch.isfinite(x[valid]).all():
        raise InvalidInputError("Attribution scores contain NaN or inf at perturbable positions.")
    uniform = torch.where(valid, torch.ones_like(x), torch.zeros_like(x))
    values = x[valid]
    if how == "max":
        if (values < 0).any():
            raise InvalidInputError(
                f"'max' normalisation needs non-negative scores, got a minimum of {float(values.min()):.4g}; "
                "use the method's sign='positive' or 'abs', or normalise='minmax'."
            )
        top = values.max()
        return uniform if top <= 0 else torch.where(valid, x / top, torch.zeros_like(x))
    if how == "minmax":
        if values.max() == values.min():
            return uniform
        return masked_minmax(x, valid)
    cdf = torch.searchsorted(values.sort().values, values, right=True).to(torch.float64) / values.numel()
    out = torch.zeros_like(x)
    out[valid] = cdf
    return out
