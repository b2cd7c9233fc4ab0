"""Small numerical helpers shared by methods and metrics."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def masked_extrema(x: Tensor, valid: Tensor, dim: int = -1, keepdim: bool = False) -> tuple[Tensor, Tensor]:
    """``(min, max)`` of ``x`` over the ``valid`` entries along ``dim`` (``(max_float, -max_float)`` if none)."""
    big = torch.finfo(x.dtype).max
    lo = torch.where(valid, x, torch.full_like(x, big)).amin(dim=dim, keepdim=keepdim)
    hi = torch.where(valid, x, torch.full_like(x, -big)).amax(dim=dim, keepdim=keepdim)
    return lo, hi


def masked_minmax(x: Tensor, valid: Tensor, dim: int = -1) -> Tensor:
    """Min-max normalise ``x`` over the ``valid`` entries along ``dim``; invalid entries become 0.

    A constant slice (max == min) maps to 0 everywhere: our convention for loosened attention
    (the official Grad-ECLIP code divides by zero there).
    """
    lo, hi = masked_extrema(x, valid, dim=dim, keepdim=True)
    span = hi - lo
    out = torch.where(span > 0, (x - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(x))
    return torch.where(valid, out, torch.zeros_like(x))


def flat_rows(scores: Tensor) -> Tensor:
    """``[row]`` bool: rows of a NaN-padded ``[row, pos]`` score matrix that single out no position.

    A row is flat when all its finite entries are equal and it has more than one of them, or when
    they are all zero (e.g. Grad-ELLM where every layer map is negative, so ReLU leaves nothing).
    Such a map carries no ranking; normalising it (min-max, division by the max) must not turn it
    into one.
    """
    finite = torch.isfinite(scores)
    lo, hi = masked_extrema(scores, finite)
    count = finite.sum(dim=-1)
    all_zero = (lo == 0) & (hi == 0)
    return ((lo == hi) & (count > 1)) | all_zero


def prefix_mask(positions: Tensor | Sequence[int], n: int) -> Tensor:
    """``[step, pos]`` bool, True where ``pos <= positions[step]`` (inside each step's prefix)."""
    positions = torch.as_tensor(positions, dtype=torch.long)
    return torch.arange(n, device=positions.device)[None, :] <= positions[:, None]


def first_nonfinite_row(x: Tensor, inside: Tensor) -> int | None:
    """Index of the first row of ``x`` (``[row, ..., pos]``) with NaN/inf where ``inside`` (``[row, pos]``) is True."""
    bad = ~torch.isfinite(x) & inside.reshape(inside.shape[0], *([1] * (x.ndim - 2)), inside.shape[1])
    rows = bad.flatten(1).any(dim=1).nonzero().flatten()
    return int(rows[0]) if rows.numel() else None
