"""Rank correlations against brute-force pure-Python references (hypothesis) and known values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradellm_lens import InvalidInputError
from gradellm_lens.analysis import HeadImportance, kendall_tau, rank_agreement, spearman, top_k_overlap
from gradellm_lens.analysis.correlation import average_ranks


def _ranks_loop(x):
    return [sum(v < xi for v in x) + (sum(v == xi for v in x) + 1) / 2 for xi in x]


def _pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((p - ma) * (q - mb) for p, q in zip(a, b))
    den = math.sqrt(sum((p - ma) ** 2 for p in a) * sum((q - mb) ** 2 for q in b))
    return num / den if den else float("nan")


def _kendall_loop(x, y):
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if dx == 0 and dy == 0:
            continue
        if dx == 0:
            tx += 1
        elif dy == 0:
            ty += 1
        elif dx * dy > 0:
            conc += 1
        else:
            disc += 1
    den = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / den if den else float("nan")


values = st.lists(st.integers(-3, 3), min_size=2, max_size=25)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_against_brute_force(data):
    x = data.draw(values)
    y = data.draw(st.lists(st.integers(-3, 3), min_size=len(x), max_size=len(x)))
    np.testing.assert_allclose(average_ranks(x), _ranks_loop(x))
    for ours, ref in (
        (spearman(x, y), _pearson(_ranks_loop(x), _ranks_loop(y))),
        (kendall_tau(x, y), _kendall_loop(x, y)),
    ):
        if math.isnan(ref):
            assert math.isnan(ours)
        else:
            assert ours == pytest.approx(ref, abs=1e-12)


def test_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # 5 items, one swap of neighbours: 9 concordant, 1 discordant -> tau = 0.8, rho = 1 - 6*2/(5*24) = 0.9
    assert kendall_tau([1, 2, 3, 4, 5], [1, 2, 3, 5, 4]) == pytest.approx(0.8)
    assert spearman([1, 2, 3, 4, 5], [1, 2, 3, 5, 4]) == pytest.approx(0.9)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert spearman([1, float("nan"), 3, 2], [1, 5, 3, 2]) == pytest.approx(1.0)  # NaN pair dropped
    assert top_k_overlap([5, 4, 3, 2], [4, 5, 0, 9], 2) == 0.5


def test_rank_agreement_on_common_layers():
    a = HeadImportance(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), (0, 1, 2), "positive")
    b = HeadImportance(torch.tensor([[4.0, 3.0], [30.0, 60.0]]), (1, 2), "zero_ablation_drop")
    agree = rank_agreement(a, b, k=2)
    assert agree.n == 4 and agree.k == 2
    assert agree.spearman == pytest.approx(spearman([3, 4, 5, 6], [4, 3, 30, 60]))
    assert agree.top_k == 1.0
    with pytest.raises(InvalidInputError, match="share no layer"):
        rank_agreement(a, HeadImportance(torch.ones(1, 2), (5,), "x"))
    with pytest.raises(InvalidInputError, match="Cannot correlate"):
        spearman([1, 2], [1, 2, 3])
