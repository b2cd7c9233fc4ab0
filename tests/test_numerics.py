"""Numerical helpers: flat-row detection."""

from __future__ import annotations

import torch

from gradellm_lens.numerics import flat_rows


def test_flat_rows():
    nan = float("nan")
    scores = torch.tensor([[0.0, 0.0, nan], [2.0, 2.0, 2.0], [1.0, 2.0, nan], [3.0, nan, nan], [0.0, nan, nan]])
    assert flat_rows(scores).tolist() == [True, True, False, False, True]
