"""π-Soft keep probabilities and AUC on hostile scores and π grids."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import hostile_scores, pi_grids, positive_factors

from gradellm_lens.metrics import (
    FALLBACK_RULES,
    RESCALE_KINDS,
    all_prefix_mask,
    importance_weights,
    normalised_auc,
    pi_keep_probabilities,
)
from gradellm_lens.metrics.retention import retention_probs


@settings(max_examples=120, deadline=None)
@given(
    raw=hostile_scores,
    pis=pi_grids,
    how=st.sampled_from(["max", "minmax", "rank"]),
    rescale=st.sampled_from(RESCALE_KINDS),
    side=st.sampled_from(["ns", "nc"]),
)
def test_keep_probabilities_have_mean_pi_on_hostile_scores(raw, pis, how, rescale, side):
    s = torch.tensor(raw, dtype=torch.float64)
    m = all_prefix_mask(len(raw))
    r = retention_probs(importance_weights(s, m, how), m, pis, side=side, rescale=rescale)
    keep = r.keep
    assert torch.isfinite(keep).all() and ((keep >= 0) & (keep <= 1)).all()
    assert (keep[:, 0] == 1).all()  # BOS is never perturbed
    torch.testing.assert_close(keep[:, 1:].mean(1), torch.tensor(pis, dtype=torch.float64), atol=1e-7, rtol=0)
    assert all(rule in (rescale, *FALLBACK_RULES) for rule in r.rules) and len(r.rules) == len(pis)
    assert r.fallback_used == any(rule in FALLBACK_RULES for rule in r.rules)


def test_scale_clip_reaches_pi_when_the_smallest_score_is_subnormal():
    """Regression: the scale factor c ~ 1e323 overflowed float64, so c·ŝ saturated every token."""
    s = torch.tensor([0.0, 5e-324, 1.0], dtype=torch.float64)
    ns = retention_probs(s, all_prefix_mask(3), [0.9], rescale="scale_clip")
    assert ns.rules == ("scale_clip",) and ns.keep[0].tolist() == pytest.approx([1.0, 0.8, 1.0])


def test_one_perturbable_token_and_flat_maps_give_uniform_keep():
    """Nothing to rank: every perturbable token is kept with probability π on both sides."""
    pis = [0.2, 0.7]
    for raw in ([3.0, 5.0], [0.0, 0.0, 0.0], [9.0, 2.0, 2.0, 2.0], [0.0, 1e-300, 1e-300]):
        s = torch.tensor(raw, dtype=torch.float64)
        m = all_prefix_mask(len(raw))
        for how in ("max", "minmax", "rank"):
            for keep in (k.keep[:, 1:] for k in pi_keep_probabilities(importance_weights(s, m, how), m, pis)):
                expected = torch.tensor(pis, dtype=torch.float64)[:, None].expand_as(keep)
                torch.testing.assert_close(keep, expected, atol=1e-9, rtol=0)


@settings(max_examples=100, deadline=None)
@given(
    pis=pi_grids,
    values=st.lists(st.floats(min_value=0, max_value=1), min_size=9, max_size=9),
    level=st.floats(min_value=0, max_value=1),
)
def test_auc_lies_in_the_unit_interval_on_any_grid(pis, values, level):
    values = values[: len(pis)]
    assert 0.0 <= normalised_auc(pis, values) <= 1.0 + 1e-12
    assert normalised_auc(pis, [level] * len(pis)) == pytest.approx(level)  # a flat curve's AUC is its value


@settings(max_examples=60, deadline=None)
@given(raw=hostile_scores, factor=positive_factors, how=st.sampled_from(["max", "minmax", "rank"]))
def test_pi_keep_is_invariant_to_positive_rescaling(raw, factor, how):
    s = torch.tensor(raw, dtype=torch.float64)
    scaled = s * factor
    assume(bool(torch.isfinite(scaled).all()) and bool(((scaled > 0) == (s > 0)).all()))  # no over/underflow
    m = all_prefix_mask(len(raw))
    for rescale in RESCALE_KINDS:
        a, b = (pi_keep_probabilities(importance_weights(x, m, how), m, (0.1, 0.5, 0.9), rescale) for x in (s, scaled))
        for x, y in zip(a, b):
            torch.testing.assert_close(x.keep, y.keep, atol=1e-7, rtol=0)
            assert x.rules == y.rules
