"""The chance-level baselines: ``random`` (a fresh seeded map per prefix and target, K independent maps)
and ``uniform`` (the all-equal map), and that random's expected π-Soft is uniform's."""

from __future__ import annotations

import pytest
import torch
from test_metrics_faithfulness import TARGET, LinearReadout

from gradellm_lens import InvalidInputError, Step, Target
from gradellm_lens.evaluation import bootstrap_ci, paired_bootstrap_ci
from gradellm_lens.methods import make_method
from gradellm_lens.metrics import FaithfulnessConfig, evaluate_step, step_reference
from gradellm_lens.metrics.perturb import draw_uniforms, step_seed


def _map(model, tokens, position, target, **options):
    """The random map of one step (its row over the prefix)."""
    scores = make_method("random", model, **options).attribute(tokens, [Step(position, Target(target))]).scores
    return scores[0, : position + 1]


def test_two_inputs_get_different_random_maps_and_one_input_always_the_same(tiny_model, tiny_ids):
    other = tiny_ids.flip(0)
    a, b = _map(tiny_model, tiny_ids, 8, 5), _map(tiny_model, other, 8, 5)
    assert not torch.equal(a, b)  # another prefix: another map (the old baseline reused one pattern)
    assert not torch.equal(a, _map(tiny_model, tiny_ids, 8, 6))  # another target: another map
    # the same (prefix, target) gets the same map, whatever else is attributed with it
    steps = [Step(p, Target(int(tiny_ids[p + 1]))) for p in (3, 8, 10)]
    together = make_method("random", tiny_model).attribute(tiny_ids, steps).scores
    torch.testing.assert_close(together[1, :9], _map(tiny_model, tiny_ids[:9], 8, int(tiny_ids[9])))
    assert not torch.equal(together[0, :4], together[1, :4])  # one example, two steps: two maps
    torch.testing.assert_close(a, _map(tiny_model, tiny_ids, 8, 5))
    assert not torch.equal(a, _map(tiny_model, tiny_ids, 8, 5, seed=1))


def test_random_samples_are_independent_maps(tiny_model, tiny_ids):
    method = make_method("random", tiny_model, seed=2, sample=1)
    maps = method.samples(4)
    assert [m.options.sample for m in maps] == [1, 2, 3, 4] and all(m.options.seed == 2 for m in maps)
    rows = [m.attribute(tiny_ids, [Step(9, Target(7))]).scores[0, :10] for m in maps]
    torch.testing.assert_close(rows[0], _map(tiny_model, tiny_ids, 9, 7, seed=2, sample=1))
    correlations = torch.corrcoef(torch.stack(rows)).fill_diagonal_(0).abs()
    assert len({tuple(r.tolist()) for r in rows}) == 4 and correlations.max() < 0.9
    with pytest.raises(InvalidInputError, match=r"\bcount\b.*got 0\b"):
        method.samples(0)
    with pytest.raises(InvalidInputError, match=r"\bsample\b.*-1"):
        make_method("random", tiny_model, sample=-1)


def test_random_is_uniform_on_0_1_and_independent_of_the_metric_masks(tiny_model, tiny_ids):
    """Scores pooled over many steps follow U(0, 1) (Kolmogorov-Smirnov distance), and a step's map is
    not the metric's Bernoulli uniforms of that step (both are seeded by the prefix and target)."""
    values = torch.cat([_map(tiny_model, tiny_ids, 11, target, sample=k) for target in range(40) for k in range(5)])
    ecdf = torch.arange(1, values.numel() + 1, dtype=torch.float64) / values.numel()
    ks = (ecdf - values.double().sort().values).abs().max()
    assert ((values >= 0) & (values < 1)).all() and ks < 1.36 / values.numel() ** 0.5  # 5% critical value
    prefix = tiny_ids[:12]
    masks = draw_uniforms(step_seed(0, prefix, 5), 1, 12, 4)[0, :, 0]
    row = _map(tiny_model, tiny_ids, 11, 5)
    assert not torch.equal(row, masks) and not torch.equal(
        row, draw_uniforms(step_seed(0, prefix, 5), 1, 12, 1)[0, :, 0]
    )


def test_uniform_is_the_all_equal_map_and_the_metrics_see_it_as_flat(tiny_model, tiny_ids):
    steps = [Step(p, Target(int(tiny_ids[p + 1]))) for p in (3, 8)]
    scores = make_method("uniform", tiny_model).attribute(tiny_ids, steps).scores
    assert torch.equal(scores[0, :4], torch.ones(4)) and torch.equal(scores[1, :9], torch.ones(9))
    assert torch.isnan(scores[0, 4:]).all()
    out = evaluate_step(tiny_model, tiny_ids[:9], steps[1].target, scores[1, :9], config=FaithfulnessConfig(n_draws=1))
    assert out.flat and out.mean_score == 1.0


def test_random_expected_pi_soft_equals_uniform_within_its_ci(tiny_model):
    """On a model whose target logit is linear in the kept embedding fraction, K = 10 random maps per
    example average (over 16 examples) to the uniform map's π-Soft AUCs: uniform lies inside random's
    95% CI and the paired CI of random − uniform holds 0; the true importance map beats both."""
    config = FaithfulnessConfig(pis=(0.25, 0.5, 0.75), n_draws=1)
    keys = ("auc_pi_ns", "auc_pi_nc")
    random, uniform, oracle = ({k: {} for k in keys} for _ in range(3))
    n = 16
    for example in range(16):
        gen = torch.Generator().manual_seed(100 + example)
        model = LinearReadout(torch.rand(n, generator=gen, dtype=torch.float64), full_logit=3.0, seed=example)
        prefix = torch.randint(1, 8, (n,), generator=gen)
        reference = step_reference(model, prefix, TARGET)
        maps = [m.attribute(prefix, [Step(n - 1, Target(TARGET))]).scores[0] for m in
                make_method("random", tiny_model).samples(10)]  # fmt: skip
        scored = {
            "random": [evaluate_step(model, prefix, TARGET, s, config=config, reference=reference) for s in maps],
            "uniform": [evaluate_step(model, prefix, TARGET, torch.ones(n), config=config, reference=reference)],
            "oracle": [evaluate_step(model, prefix, TARGET, model.importance(prefix), config=config, reference=reference)],
        }  # fmt: skip
        for store, name in ((random, "random"), (uniform, "uniform"), (oracle, "oracle")):
            for k in keys:
                store[k][example] = sum(getattr(r, k) for r in scored[name]) / len(scored[name])
    for k in keys:
        ci = bootstrap_ci(list(random[k].values()))
        u = sum(uniform[k].values()) / len(uniform[k])
        difference = paired_bootstrap_ci(random[k], uniform[k])
        assert ci.low <= u <= ci.high, (k, ci, u)
        assert difference.low <= 0.0 <= difference.high, (k, difference)
        assert paired_bootstrap_ci(oracle[k], random[k]).low > 0.05, k  # the test can tell a real difference
