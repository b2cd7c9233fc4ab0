"""Base normalisation, π-rescaling (keep probabilities with mean π), fallbacks, AUC: unit + property tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradellm_lens.errors import InvalidInputError
from gradellm_lens.metrics import (
    all_prefix_mask,
    check_perturbable,
    importance_weights,
    normalised_auc,
    pi_keep_probabilities,
    retention_probs,
    span_mask,
)

PIS = tuple(round(0.1 * k, 1) for k in range(1, 10))

raw_scores = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e3, allow_nan=False)), min_size=2, max_size=40
)


def _mask(n: int) -> torch.Tensor:
    return all_prefix_mask(n)


# ---- normalisation ---------------------------------------------------------------------------------


def test_normalise_known_values():
    s = torch.tensor([100.0, 0.0, 2.0, 4.0, 1.0])  # position 0 (BOS) excluded from every statistic
    m = _mask(5)
    assert importance_weights(s, m, "max").tolist() == [0.0, 0.0, 0.5, 1.0, 0.25]
    assert importance_weights(s, m, "minmax").tolist() == [0.0, 0.0, 0.5, 1.0, 0.25]
    assert importance_weights(s + 1, m, "minmax").tolist() == [0.0, 0.0, 0.5, 1.0, 0.25]
    assert importance_weights(s, m, "rank").tolist() == [0.0, 0.25, 0.75, 1.0, 0.5]
    ties = torch.tensor([0.0, 3.0, 1.0, 3.0, 1.0])
    assert importance_weights(ties, m, "rank").tolist() == [0.0, 1.0, 0.5, 1.0, 0.5]


@pytest.mark.parametrize("how", ["max", "minmax", "rank"])
def test_uninformative_scores_give_uniform(how):
    m = _mask(4)
    for s in (torch.zeros(4), torch.tensor([9.0, 2.0, 2.0, 2.0])):
        if how == "max" or s.sum() > 0:
            assert importance_weights(s, m, how).tolist() == [0.0, 1.0, 1.0, 1.0]


def test_normalise_errors():
    m = _mask(3)
    with pytest.raises(InvalidInputError, match="non-negative"):
        importance_weights(torch.tensor([0.0, -1.0, 2.0]), m, "max")
    assert importance_weights(torch.tensor([0.0, -1.0, 2.0]), m, "minmax").tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(InvalidInputError, match="how='l2' is invalid"):
        importance_weights(torch.ones(3), m, "l2")
    with pytest.raises(InvalidInputError, match="NaN"):
        importance_weights(torch.tensor([0.0, float("nan"), 1.0]), m)


# ---- π-rescaling -----------------------------------------------------------------------------------


def test_scale_clip_known_values():
    s = torch.tensor([0.0, 1.0, 0.5, 0.25, 0.25])
    m = _mask(5)
    ns = retention_probs(s, m, [0.25, 0.5], side="ns")
    assert ns.rules == ("scale_clip", "scale_clip")
    # π = 0.25: c = 0.5 -> [0.5, 0.25, 0.125, 0.125]; π = 0.5: c = 1 -> ŝ itself
    torch.testing.assert_close(ns.keep[0], torch.tensor([1.0, 0.5, 0.25, 0.125, 0.125], dtype=torch.float64))
    torch.testing.assert_close(ns.keep[1], s.double().where(m, torch.tensor(1.0, dtype=torch.float64)))
    nc = retention_probs(s, m, [0.75], side="nc")  # removal mean 0.25 -> d = ŝ/2
    torch.testing.assert_close(nc.keep[0], torch.tensor([1.0, 0.5, 0.75, 0.875, 0.875], dtype=torch.float64))
    clipped = retention_probs(s, m, [0.75], side="ns")  # c = 2: the top token clips at 1
    torch.testing.assert_close(clipped.keep[0], torch.tensor([1.0, 1.0, 1.0, 0.5, 0.5], dtype=torch.float64))


def test_water_fill_fallback():
    s = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.5])  # 2 positive of 4 perturbable: NS reaches at most 0.5
    m = _mask(5)
    r = retention_probs(s, m, [0.4, 0.5, 0.75], side="ns")
    assert r.rules == ("scale_clip", "water_fill", "water_fill") and r.fallback_used
    torch.testing.assert_close(r.keep[2], torch.tensor([1.0, 1.0, 0.5, 0.5, 1.0], dtype=torch.float64))
    nc = retention_probs(s, m, [0.25], side="nc")  # removal 0.75: positives removed, 0.5 over zeros
    assert nc.rules == ("water_fill",)
    torch.testing.assert_close(nc.keep[0], torch.tensor([1.0, 0.0, 0.5, 0.5, 0.0], dtype=torch.float64))


def test_power_rule_and_top_fill():
    s = torch.tensor([0.0, 1.0, 0.25, 0.5, 0.0625])
    m = _mask(5)
    r = retention_probs(s, m, [0.1, 0.4], side="ns", rescale="power")
    assert r.rules == ("top_fill", "power")
    torch.testing.assert_close(r.keep[0], torch.tensor([1.0, 0.4, 0.0, 0.0, 0.0], dtype=torch.float64))
    gamma_keep = r.keep[1, 1:]  # ŝ^γ: log r / log ŝ is the same γ for every token
    gammas = torch.log(gamma_keep[1:]) / torch.log(s[2:].double())
    torch.testing.assert_close(gammas, gammas[:1].expand(3))
    uniform = retention_probs(torch.tensor([0.0, 1.0, 1.0]), _mask(3), [0.3], rescale="power")
    assert uniform.rules == ("top_fill",) and uniform.keep[0, 1:].tolist() == pytest.approx([0.3, 0.3])


@settings(max_examples=150, deadline=None)
@given(
    raw=raw_scores,
    how=st.sampled_from(["max", "minmax", "rank"]),
    rescale=st.sampled_from(["scale_clip", "power"]),
    side=st.sampled_from(["ns", "nc"]),
)
def test_keep_probabilities_property(raw, how, rescale, side):
    s = torch.tensor(raw, dtype=torch.float64)
    m = _mask(len(raw))
    norm = importance_weights(s, m, how)
    r = retention_probs(norm, m, PIS, side=side, rescale=rescale)
    keep = r.keep
    assert ((keep >= 0) & (keep <= 1)).all()
    assert (keep[:, 0] == 1).all()  # BOS always kept
    torch.testing.assert_close(keep[:, 1:].mean(1), torch.tensor(PIS, dtype=torch.float64), atol=1e-7, rtol=0)
    # ordering never broken, ties stay tied: keep is weakly monotone in ŝ (increasing for NS, decreasing for NC)
    x = norm[1:]
    order = torch.argsort(x)
    sorted_keep = keep[:, 1:][:, order]
    diffs = sorted_keep.diff(dim=1) * (1 if side == "ns" else -1)
    assert (diffs >= -1e-9).all()
    same = x[order].diff() == 0
    assert (sorted_keep.diff(dim=1)[:, same].abs() < 1e-9).all()
    # curves are nested: a larger π never lowers a keep probability
    assert (keep.diff(dim=0) >= -1e-9).all()


@settings(max_examples=100, deadline=None)
@given(raw=raw_scores, factor=st.floats(min_value=1e-3, max_value=1e3), how=st.sampled_from(["max", "minmax", "rank"]))
def test_rescaling_scores_does_not_change_keep(raw, factor, how):
    s = torch.tensor(raw, dtype=torch.float64)
    m = _mask(len(raw))
    a, b = (pi_keep_probabilities(importance_weights(x, m, how), m, PIS) for x in (s, s * factor))
    torch.testing.assert_close(a[0].keep, b[0].keep, atol=1e-9, rtol=0)
    torch.testing.assert_close(a[1].keep, b[1].keep, atol=1e-9, rtol=0)


def test_retention_errors():
    m = _mask(3)
    with pytest.raises(InvalidInputError, match="strictly between 0 and 1"):
        retention_probs(torch.tensor([0.0, 1.0, 0.5]), m, [0.0, 0.5])
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        retention_probs(torch.tensor([0.0, 2.0, 0.5]), m, [0.5])
    with pytest.raises(InvalidInputError, match="rescale='linear' is invalid"):
        retention_probs(torch.tensor([0.0, 1.0, 0.5]), m, [0.5], rescale="linear")


# ---- AUC and perturbable masks ---------------------------------------------------------------------


def test_auc_known_values():
    assert normalised_auc([0.1, 0.5, 0.9], [0.0, 1.0, 0.0]) == pytest.approx(0.5)
    assert normalised_auc([0.2, 0.4], [0.3, 0.3]) == pytest.approx(0.3)
    assert normalised_auc([0.5], [0.7]) == 0.7


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(min_value=0, max_value=1), min_size=9, max_size=9))
def test_auc_in_unit_interval(values):
    assert 0.0 <= normalised_auc(PIS, values) <= 1.0 + 1e-12


def test_perturbable_masks():
    assert all_prefix_mask(4).tolist() == [False, True, True, True]
    assert span_mask(6, 2, 4).tolist() == [False, False, True, True, False, False]
    assert span_mask(3, 0, 10).tolist() == [False, True, True]  # clipped to the prefix, BOS excluded
    with pytest.raises(InvalidInputError, match="no perturbable position"):
        span_mask(3, 5, 8)
    with pytest.raises(InvalidInputError, match="position 0"):
        check_perturbable(torch.tensor([True, True]), 2)
    with pytest.raises(InvalidInputError, match="shape"):
        check_perturbable(torch.tensor([False, True]), 3)
    with pytest.raises(InvalidInputError, match="boolean"):
        check_perturbable(torch.tensor([0, 1, 1]), 3)
    with pytest.raises(InvalidInputError, match="No perturbable position"):
        check_perturbable(None, 1)
