"""Numerical safety of the faithfulness metrics and flat maps in the evaluation.

Property tests over hostile score vectors -- zeros, ties, a single perturbable token,
magnitudes from subnormal to 1e300 -- and arbitrary π grids: π-rescaled keep probabilities lie in
[0, 1] with mean exactly π (a fallback rule is named when the main rule cannot reach π), AUCs lie in
[0, 1], and the metrics are invariant to positive rescaling of the scores (π-Soft with every base
normalisation, plain Soft with min-max, which is also shift-invariant). Flat maps (all zero or all
equal) are scored as the uniform map, flagged per step, and counted in the evaluation summary.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gradellm_lens import Target
from gradellm_lens.evaluation import ResultsFile, RunHeader, run_evaluation, summarize
from gradellm_lens.evaluation.runner import EvaluationConfig
from gradellm_lens.metrics import (
    FALLBACK_RULES,
    RESCALE_KINDS,
    FaithfulnessConfig,
    all_prefix_mask,
    evaluate_step,
    importance_weights,
    normalised_auc,
    pi_keep_probabilities,
    plain_soft_keep,
)
from gradellm_lens.metrics.retention import retention_probs

magnitudes = st.sampled_from([5e-324, 1e-310, 1e-300, 1e-45, 1e-12, 1e-3, 1.0, 7.0, 1e12, 1e38, 1e300])
hostile_scores = st.lists(
    st.one_of(st.just(0.0), magnitudes, st.floats(min_value=1e-9, max_value=1e9)), min_size=2, max_size=24
)
pi_grids = st.lists(
    st.one_of(st.floats(min_value=1e-6, max_value=1 - 1e-6), st.sampled_from([1e-9, 0.5, 1 - 1e-9])),
    min_size=1,
    max_size=9,
    unique=True,
).map(sorted)


def _mask(n: int) -> torch.Tensor:
    return all_prefix_mask(n)


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
    m = _mask(len(raw))
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
    ns = retention_probs(s, _mask(3), [0.9], rescale="scale_clip")
    assert ns.rules == ("scale_clip",) and ns.keep[0].tolist() == pytest.approx([1.0, 0.8, 1.0])


def test_one_perturbable_token_and_flat_maps_give_uniform_keep():
    """Nothing to rank: every perturbable token is kept with probability π on both sides."""
    pis = [0.2, 0.7]
    for raw in ([3.0, 5.0], [0.0, 0.0, 0.0], [9.0, 2.0, 2.0, 2.0], [0.0, 1e-300, 1e-300]):
        s = torch.tensor(raw, dtype=torch.float64)
        m = _mask(len(raw))
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


positive_factors = st.sampled_from([1e-30, 1e-6, 0.5, 3.0, 1e6, 1e30])


@settings(max_examples=150, deadline=None)
@given(raw=hostile_scores, factor=positive_factors, shift=st.floats(min_value=-1e3, max_value=1e3))
def test_plain_soft_keep_is_invariant_to_positive_affine_maps(raw, factor, shift):
    """Plain Soft-NS/NC keep ``ŝ`` / ``1 - ŝ`` of the min-max scores: invariant to ``a·s + b``, ``a > 0``."""
    s = torch.tensor(raw, dtype=torch.float64)
    assume(bool(torch.isfinite(s * factor + shift).all()))
    spread = float(s[1:].max() - s[1:].min())
    assume(spread == 0 or spread * factor > 1e-6 * (abs(shift) + float(s.abs().max()) * factor))  # no cancellation
    m = _mask(len(raw))
    a, b = (plain_soft_keep(importance_weights(x, m, "minmax"), m) for x in (s, s * factor + shift))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@settings(max_examples=60, deadline=None)
@given(raw=hostile_scores, factor=positive_factors, how=st.sampled_from(["max", "minmax", "rank"]))
def test_pi_keep_is_invariant_to_positive_rescaling(raw, factor, how):
    s = torch.tensor(raw, dtype=torch.float64)
    scaled = s * factor
    assume(bool(torch.isfinite(scaled).all()) and bool(((scaled > 0) == (s > 0)).all()))  # no over/underflow
    m = _mask(len(raw))
    for rescale in RESCALE_KINDS:
        a, b = (pi_keep_probabilities(importance_weights(x, m, how), m, (0.1, 0.5, 0.9), rescale) for x in (s, scaled))
        for x, y in zip(a, b):
            torch.testing.assert_close(x.keep, y.keep, atol=1e-7, rtol=0)
            assert x.rules == y.rules


@settings(max_examples=6, deadline=None)
@given(factor=positive_factors, seed=st.integers(0, 50), normalise=st.sampled_from(["max", "minmax", "rank"]))
def test_evaluate_step_is_invariant_to_positive_rescaling(tiny_model, factor, seed, normalise):
    """End to end on the tiny model: every reported number is unchanged by scaling the scores."""
    prefix = torch.tensor([1, 4, 32, 34, 14, 4, 35, 41, 23, 7])
    scores = torch.rand(10, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    config = FaithfulnessConfig(pis=(0.2, 0.5, 0.8), n_draws=2, normalise=normalise)
    a, b = (evaluate_step(tiny_model, prefix, Target(5), x, config=config) for x in (scores, scores * factor))
    for field in ("soft_ns", "soft_nc", "pi_ns", "pi_nc", "auc_pi_ns", "auc_pi_nc", "mean_score", "flat"):
        assert getattr(a, field) == pytest.approx(getattr(b, field), abs=1e-9), field


def test_flat_steps_are_flagged_and_scored_as_uniform(tiny_model):
    prefix = torch.tensor([1, 4, 32, 34, 14, 4])
    config = FaithfulnessConfig(pis=(0.3, 0.7), n_draws=2)
    flat_maps = [torch.zeros(6), torch.full((6,), 2.5), torch.tensor([7.0, 0, 0, 0, 0, 0])]  # last: only BOS
    results = [evaluate_step(tiny_model, prefix, Target(5), s, config=config) for s in flat_maps]
    assert all(r.flat for r in results) and all(r.mean_score == 1.0 for r in results)  # uniform ŝ ≡ 1
    assert len({(r.pi_ns, r.pi_nc, r.soft_ns, r.soft_nc) for r in results}) == 1  # all the same uniform map
    ranked = evaluate_step(tiny_model, prefix, Target(5), torch.tensor([0.0, 1, 0, 0, 3, 0]), config=config)
    assert not ranked.flat and ranked.mean_score < 1.0


# ---- flat steps in the evaluation runner and summary ----------------------------------------------


@pytest.mark.filterwarnings("ignore::gradellm_lens.UnknownTokenWarning")
def test_runner_records_flat_steps_and_the_summary_counts_them(tiny_model, tmp_path):
    from evaldata import write_task_files

    from gradellm_lens.tasks import make_task

    task = make_task("sst2", data_dir=write_task_files(tmp_path / "data"))
    config = EvaluationConfig(n=3, metrics=FaithfulnessConfig(pis=(0.3, 0.7), n_draws=1), progress=False)
    out = tmp_path / "r.jsonl"
    with tiny_model.hooks(fwd_hooks=[("blocks.1.attn.hook_v", lambda v, hook: v * 0)]):  # Grad-ELLM maps all 0
        run_evaluation(tiny_model, task, "grad_ellm,random", out, config)
    records = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    assert all(r["n_flat"] == sum(s["flat"] for s in r["steps"]) for r in records)
    summary = {m.label: m for m in summarize([out]).methods}
    assert (summary["grad_ellm"].n_flat_steps, summary["grad_ellm"].n_steps) == (3, 3)
    assert (summary["random"].n_flat_steps, summary["random"].n_steps) == (0, 3)
    table = summarize([out]).to_markdown()
    assert table.splitlines()[0].endswith("| flat steps |") and "| 3/3 |" in table and "| 0/3 |" in table
    assert "*Flat steps*" in summarize([out]).to_report()
    rows = [r for r in csv.DictReader(summarize([out]).to_csv().splitlines()) if r["metric"] == "n_flat_steps"]
    assert {(r["method"], r["mean"], r["n"]) for r in rows} == {("grad_ellm", "3", "3"), ("random", "0", "3")}


def test_summary_of_results_without_the_flat_flag(tmp_path):
    """Files written before the flag existed still summarise; the flat column says it is unknown."""
    config = {"task": {"task": "sst2", "kind": "classification", "prompt_format": "chat"}, "model": {"name": "m"},
              "metrics": {"pis": [0.3, 0.7], "n_draws": 1, "rescale": "scale_clip", "probability": "target"},
              "perturb": "all"}  # fmt: skip
    header = RunHeader(config, {"m": {"method": "m"}})
    mean = {k: 0.5 for k in ("soft_ns", "soft_nc", "auc_pi_ns", "auc_pi_nc", "mean_score")}
    with ResultsFile(tmp_path / "old.jsonl", header) as store:
        store.append({"example_id": "e0", "method": "m", "fingerprint": header.method_fingerprint("m"),
                      "status": "ok", "n_steps": 1, "pis": [0.3, 0.7],
                      "mean": {**mean, "pi_ns": [0.5, 0.5], "pi_nc": [0.5, 0.5]}})  # fmt: skip
    summary = summarize([tmp_path / "old.jsonl"])
    assert summary.methods[0].n_flat_steps is None and summary.methods[0].flat_cell() == "–"
    assert "| m | 1 | 0 |" in summary.to_markdown() and "n_flat_steps" not in summary.to_csv()
