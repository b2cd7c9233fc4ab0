"""Small numerical helpers shared by methods and metrics."""

from __future__ import annotations

import torch
from torch import Tensor


def masked_minmax(x: Tensor, valid: Tensor, dim: int = -1) -> Tensor:
    """Min-max normalise ``x`` over the ``valid`` entries along ``dim``; invalid entries become 0.

    A constant slice (max == min) maps to 0 everywhere: the loosened-attention convention of
    method-spec 1.4 (the official Grad-ECLIP code divides by zero there).
    """
    big = torch.finfo(x.dtype).max
    lo = torch.where(valid, x, torch.full_like(x, big)).amin(dim=dim, keepdim=True)
    hi = torch.where(valid, x, torch.full_like(x, -big)).amax(dim=dim, keepdim=True)
    span = hi - lo
    out = torch.where(span > 0, (x - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(x))
    return torch.where(valid, out, torch.zeros_like(x))
