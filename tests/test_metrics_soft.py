"""Soft-NS/NC formulas (invariant to positive affine maps of min-max scores), ReAGent's distribution
distance and the log-ratio summary."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import hostile_scores, positive_factors

from gradellm_lens.errors import InvalidInputError
from gradellm_lens.metrics import (
    all_prefix_mask,
    distribution_distance,
    importance_weights,
    log_ratio,
    plain_soft_keep,
    probability_drop,
    soft_nc,
    soft_ns,
)


def test_target_probability_drop():
    full = torch.tensor([0.7, 0.2, 0.1])
    perturbed = torch.tensor([[0.4, 0.5, 0.1], [0.9, 0.05, 0.05]])
    torch.testing.assert_close(probability_drop(full, perturbed, 0), torch.tensor([0.3, 0.0]))
    with pytest.raises(InvalidInputError, match="probability='logit' is invalid"):
        probability_drop(full, perturbed, 0, "logit")


def test_distribution_distance_is_reagent_formula():
    p = torch.tensor([0.5, 0.5, 0.0])
    q = torch.tensor([0.0, 0.0, 1.0])
    assert float(distribution_distance(p, p)) == 0.0
    assert float(distribution_distance(p, q)) == pytest.approx(2 / math.sqrt(2))  # disjoint supports: √2
    torch.testing.assert_close(probability_drop(p, q[None], 0, "distribution"), distribution_distance(p, q)[None])


def test_normalised_scores_known_values():
    # S = 1 - drop, S0 = 1 - drop0: Soft-NS = max(0, S - S0)/(1 - S0), Soft-NC = C/(1 - S0)
    drop0 = torch.tensor(0.5)
    drops = torch.tensor([0.0, 0.1, 0.5, 0.8])
    torch.testing.assert_close(soft_ns(drops, drop0), torch.tensor([1.0, 0.8, 0.0, 0.0]))
    torch.testing.assert_close(soft_nc(drops, drop0), torch.tensor([0.0, 0.2, 1.0, 1.0]))  # clipped at 1


def test_degenerate_normaliser_is_bounded():
    drops = torch.tensor([0.0, 1e-6, 0.3])
    assert soft_ns(drops, torch.tensor(0.0)).tolist() == [0.0, 0.0, 0.0]
    torch.testing.assert_close(soft_nc(drops, torch.tensor(0.0), eps=1e-4), torch.tensor([0.0, 0.01, 1.0]))


def test_plain_soft_keep():
    s = torch.tensor([0.3, 0.0, 0.25, 1.0])
    mask = torch.tensor([False, True, True, True])
    assert plain_soft_keep(s, mask).tolist() == [[1.0, 0.0, 0.25, 1.0], [1.0, 1.0, 0.75, 0.0]]


def test_log_ratio():
    assert log_ratio(0.4, 0.2) == pytest.approx(math.log(2))
    assert math.isnan(log_ratio(0.0, 0.2))


@settings(max_examples=150, deadline=None)
@given(raw=hostile_scores, factor=positive_factors, shift=st.floats(min_value=-1e3, max_value=1e3))
def test_plain_soft_keep_is_invariant_to_positive_affine_maps(raw, factor, shift):
    """Plain Soft-NS/NC keep ``ŝ`` / ``1 - ŝ`` of the min-max scores: invariant to ``a·s + b``, ``a > 0``."""
    s = torch.tensor(raw, dtype=torch.float64)
    assume(bool(torch.isfinite(s * factor + shift).all()))
    spread = float(s[1:].max() - s[1:].min())
    assume(spread == 0 or spread * factor > 1e-6 * (abs(shift) + float(s.abs().max()) * factor))  # no cancellation
    m = all_prefix_mask(len(raw))
    a, b = (plain_soft_keep(importance_weights(x, m, "minmax"), m) for x in (s, s * factor + shift))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
