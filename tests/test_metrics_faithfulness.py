"""``evaluate_step``: known answers on synthetic models, π-control vs inflation, batching, seeding, BOS, errors,
invariance to positive rescaling of the scores, flat maps.

The synthetic models implement :class:`~gradellm_lens.metrics.MaskedForward` directly: the target
logit is ``α · Σ_i w_i · mean_d(m_{i,d} · e_{i,d})`` (every other logit is 0), so the true importance
of position ``i`` is ``w_i · mean_d e_{i,d}`` and all-masked inputs give the uniform distribution.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import positive_factors

from gradellm_lens import Target
from gradellm_lens.errors import InvalidInputError
from gradellm_lens.metrics import (
    FaithfulnessConfig,
    FaithfulnessScores,
    distribution_distance,
    evaluate_result,
    evaluate_step,
    span_mask,
    step_reference,
)
from gradellm_lens.metrics.perturb import BridgeMaskedForward

VOCAB, TARGET = 8, 3
FAST = FaithfulnessConfig(pis=(0.1, 0.3, 0.5, 0.7, 0.9), n_draws=2)


class LinearReadout:
    """A model whose target logit reads the input embeddings linearly with position weights ``w``."""

    def __init__(self, weights: torch.Tensor, d_model: int = 128, full_logit: float = 5.0, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.d_model = d_model
        self.table = 0.5 + torch.rand(VOCAB + 16, d_model, generator=gen, dtype=torch.float64)
        self.weights = weights.double()
        self.calls: list[torch.Tensor] = []
        self.full_logit = full_logit

    def importance(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.weights * self.table[tokens].mean(-1)

    def alpha(self, tokens: torch.Tensor) -> float:
        return self.full_logit / float(self.importance(tokens).sum())

    def probs(self, logit: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*logit.shape, VOCAB, dtype=torch.float64)
        logits[..., TARGET] = logit
        return logits.softmax(-1)

    def __call__(self, tokens: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        self.calls.append(masks.clone())
        kept = (masks.double() * self.table[tokens][None]).mean(-1)  # [batch, pos]
        logit = self.alpha(tokens) * (kept * self.weights[None]).sum(-1)
        logits = torch.zeros(masks.shape[0], VOCAB, dtype=torch.float64)
        logits[:, TARGET] = logit
        return logits


def _prefix(n: int) -> torch.Tensor:
    return torch.arange(n) % 20 + 1


def _one_token_model(n: int = 12, j: int = 6) -> LinearReadout:
    return LinearReadout(torch.nn.functional.one_hot(torch.tensor(j), n).double())


# ---- known answers ---------------------------------------------------------------------------------


def test_full_prob_and_s0_are_exact():
    model = _one_token_model()
    prefix = _prefix(12)
    out = evaluate_step(model, prefix, Target(TARGET), torch.rand(12), config=FAST)
    p_full = math.exp(5.0) / (math.exp(5.0) + VOCAB - 1)
    assert out.full_prob == pytest.approx(p_full, abs=1e-12)
    assert out.s0 == pytest.approx(1 - (p_full - 1 / VOCAB), abs=1e-12)
    dist = evaluate_step(model, prefix, TARGET, torch.rand(12), config=FaithfulnessConfig(probability="distribution"))
    full, zero = model.probs(torch.tensor(5.0)), model.probs(torch.tensor(0.0))
    assert dist.s0 == pytest.approx(1 - float(distribution_distance(full, zero)), abs=1e-12)
    for value in (*dist.pi_ns, *dist.pi_nc, dist.soft_ns, dist.soft_nc):
        assert 0.0 <= value <= 1.0


def test_right_attribution_beats_random_and_reversed():
    n, j = 12, 6
    model, prefix = _one_token_model(n, j), _prefix(n)
    right = torch.nn.functional.one_hot(torch.tensor(j), n).float()
    right[0] = 50.0  # a huge BOS score must not matter: BOS is outside every statistic
    reversed_ = 1.0 - right
    gen = torch.Generator().manual_seed(1)
    randoms = [evaluate_step(model, prefix, TARGET, torch.rand(n, generator=gen), config=FAST) for _ in range(5)]
    ok, bad = (evaluate_step(model, prefix, TARGET, s, config=FAST) for s in (right, reversed_))
    # the right map keeps (NS) / removes (NC) exactly the token the model reads: both metrics are 1 at every π
    assert ok.pi_ns == pytest.approx((1.0,) * 5) and ok.pi_nc == pytest.approx((1.0,) * 5)
    assert ok.soft_ns == pytest.approx(1.0) and ok.soft_nc == pytest.approx(1.0)
    assert bad.auc_pi_ns == pytest.approx(0.0) and bad.auc_pi_nc == pytest.approx(0.0)
    for metric in ("auc_pi_ns", "auc_pi_nc"):
        rand = sum(getattr(r, metric) for r in randoms) / len(randoms)
        assert getattr(ok, metric) > rand + 0.2 > getattr(bad, metric) + 0.2, metric
    assert ok.fallback_used and "water_fill" in ok.rules_ns  # one positive score: water-filling


@pytest.mark.parametrize("rescale", ["scale_clip", "power"])
def test_inflated_scores_gain_under_plain_soft_but_not_under_pi_control(rescale):
    n = 16
    gen = torch.Generator().manual_seed(3)
    weights = torch.rand(n, generator=gen, dtype=torch.float64) ** 3
    model, prefix = LinearReadout(weights), _prefix(n)
    honest = model.importance(prefix)
    inflated = honest**0.3  # same ranking, much larger mean normalised score
    config = FaithfulnessConfig(n_draws=6, rescale=rescale)
    a, b = (evaluate_step(model, prefix, TARGET, s, config=config) for s in (honest, inflated))
    assert b.mean_score > a.mean_score + 0.2
    assert b.soft_ns > a.soft_ns + 0.05  # plain Soft-NS rewards keeping more
    assert b.soft_nc > a.soft_nc + 0.05  # plain Soft-NC rewards removing more
    assert b.auc_pi_ns <= a.auc_pi_ns + 0.01  # at equal retention the honest map is at least as good
    assert b.auc_pi_nc <= a.auc_pi_nc + 0.01


@pytest.mark.parametrize("rescale", ["scale_clip", "power"])
@pytest.mark.parametrize("normalise", ["max", "minmax", "rank"])
def test_every_option_runs_and_is_recorded(rescale, normalise):
    model, prefix = _one_token_model(), _prefix(12)
    config = FaithfulnessConfig(pis=(0.2, 0.8), n_draws=1, rescale=rescale, normalise=normalise)
    out = evaluate_step(model, prefix, TARGET, torch.rand(12), config=config)
    assert out.config == config.to_dict() and out.config["rescale"] == rescale
    assert len(out.pi_ns) == len(out.rules_ns) == 2 and out.n_perturbable == 11
    assert all(0.0 <= v <= 1.0 for v in (*out.pi_ns, *out.pi_nc, out.auc_pi_ns, out.auc_pi_nc))
    record = out.to_dict()
    assert isinstance(record["pi_ns"], list) and FaithfulnessScores.from_dict(record) == out


@settings(max_examples=10, deadline=None)
@given(factor=st.floats(min_value=1e-3, max_value=1e3), seed=st.integers(0, 100))
def test_positive_rescaling_of_scores_changes_nothing(factor, seed):
    model, prefix = _one_token_model(), _prefix(12)
    scores = torch.rand(12, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    a, b = (evaluate_step(model, prefix, TARGET, s, config=FAST) for s in (scores, scores * factor))
    for field in ("pi_ns", "pi_nc", "soft_ns", "soft_nc", "mean_score"):
        assert getattr(a, field) == pytest.approx(getattr(b, field), abs=1e-9), field


# ---- masks: BOS, spans, seeding, batching ----------------------------------------------------------


def test_bos_and_protected_positions_are_never_masked():
    model, prefix = _one_token_model(), _prefix(12)
    evaluate_step(model, prefix, TARGET, torch.rand(12), config=FAST)
    masks = torch.cat(model.calls)
    assert masks.shape == (2 + 2 * 2 * 6, 12, 128)
    assert (masks[:, 0] == 1).all()
    assert (masks[0] == 1).all() and (masks[1, 1:] == 0).all()  # clean input, then the all-masked S0 input
    model.calls.clear()
    evaluate_step(model, prefix, TARGET, torch.rand(12), perturbable=span_mask(12, 4, 8), config=FAST)
    masks = torch.cat(model.calls)
    outside = torch.ones(12, dtype=torch.bool)
    outside[4:8] = False
    assert (masks[:, outside] == 1).all() and (masks[1, 4:8] == 0).all()


def test_seed_reproducibility_and_common_random_numbers():
    model, prefix = _one_token_model(), _prefix(12)
    scores = torch.rand(12)
    a = evaluate_step(model, prefix, TARGET, scores, config=FAST)
    b = evaluate_step(model, prefix, TARGET, scores, config=FAST)
    assert a == b
    c = evaluate_step(model, prefix, TARGET, scores, config=FaithfulnessConfig(pis=FAST.pis, n_draws=2, seed=1))
    assert c.pi_ns != a.pi_ns
    model.calls.clear()
    evaluate_step(model, prefix, TARGET, scores, config=FAST)
    evaluate_step(model, prefix, TARGET, torch.rand(12), config=FAST)
    reference_a, first, reference_b, second = model.calls  # each step: its clean + all-masked pair, then the draws
    # another attribution on the same step: the same clean and S0 inputs, the same uniforms, other masks
    assert torch.equal(reference_a, reference_b) and not torch.equal(first, second)


def test_a_shared_step_reference_gives_identical_scores_and_is_checked():
    model, prefix, scores = _one_token_model(), _prefix(12), torch.rand(12)
    reference = step_reference(model, prefix, TARGET)
    assert reference.rho == pytest.approx((reference.p_full - reference.p_empty) / reference.p_full)
    model.calls.clear()
    shared = evaluate_step(model, prefix, TARGET, scores, config=FAST, reference=reference)
    assert len(model.calls) == 1  # only the score-dependent draws ran
    assert shared == evaluate_step(model, prefix, TARGET, scores, config=FAST)
    assert shared.p_empty == reference.p_empty and shared.rho == reference.rho
    with pytest.raises(InvalidInputError, match="not the StepReference of this step"):
        evaluate_step(model, prefix, TARGET, scores, config=FAST, reference=step_reference(model, prefix, TARGET + 1))


def test_batch_size_invariance_synthetic():
    model, prefix, scores = _one_token_model(), _prefix(12), torch.rand(12)
    outs = [
        evaluate_step(model, prefix, TARGET, scores, config=FaithfulnessConfig(pis=FAST.pis, n_draws=2, batch_size=b))
        for b in (1, 7, 64)
    ]
    values = [{k: v for k, v in out.to_dict().items() if k != "config"} for out in outs]
    assert values[0] == values[1] == values[2]  # bit-identical: the masks do not depend on the batching


def test_batch_size_invariance_tiny_llama(tiny_model, tiny_ids):
    prefix = tiny_ids[:8]
    scores = torch.rand(8)
    target = Target(int(tiny_model(prefix[None])[0, -1].argmax()))
    configs = [FaithfulnessConfig(pis=FAST.pis, n_draws=2, batch_size=b) for b in (1, 64)]
    one, many = (evaluate_step(tiny_model, prefix, target, scores, config=c) for c in configs)
    assert one.rules_ns == many.rules_ns and one.s0 == pytest.approx(many.s0, abs=1e-6)
    for field in ("pi_ns", "pi_nc", "soft_ns", "soft_nc", "full_prob"):
        assert getattr(one, field) == pytest.approx(getattr(many, field), abs=1e-5), field


def test_bridge_masking_matches_hf_inputs_embeds(tiny_model, tiny_hf, tiny_ids):
    """The hook_embed replacement equals feeding the masked embeddings to the pristine HF model."""
    forward = BridgeMaskedForward(tiny_model)
    masks = (torch.rand(3, tiny_ids.shape[0], forward.d_model) < 0.6).float()
    with torch.no_grad():
        embeds = tiny_hf.get_input_embeddings()(tiny_ids)[None] * masks
        expected = tiny_hf(inputs_embeds=embeds).logits[:, -1]
    torch.testing.assert_close(forward(tiny_ids, masks), expected, atol=1e-5, rtol=1e-5)


def test_evaluate_result_runs_every_step(tiny_model):
    from gradellm_lens import explain

    result = explain(tiny_model, "the cat sat on the mat", max_new_tokens=2, stop_at_eos=False)
    scores = evaluate_result(tiny_model, result, span=(1, result.prompt_length), config=FAST)
    assert len(scores) == 2 and all(s.n_perturbable == result.prompt_length - 1 for s in scores)


# ---- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pis=(0.0, 0.5)), "strictly between 0 and 1"),
        (dict(pis=(0.5, 1.0)), "strictly between 0 and 1"),
        (dict(pis=(0.5, 0.3)), "strictly increasing"),
        (dict(pis=()), "empty"),
        (dict(n_draws=0), "n_draws must be a positive integer"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(rescale="scale-clip"), "Did you mean 'scale_clip'"),
        (dict(probability="dist"), "probability='dist' is invalid"),
        (dict(eps=0.0), "eps"),
    ],
)
def test_invalid_config(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        FaithfulnessConfig(**kwargs)


def test_invalid_step_inputs(tiny_model):
    model, prefix = _one_token_model(), _prefix(12)
    scores = torch.rand(12)
    with pytest.raises(InvalidInputError, match=r"NaN.*positions \[3\]"):
        evaluate_step(model, prefix, TARGET, scores.index_fill(0, torch.tensor([3]), float("nan")), config=FAST)
    with pytest.raises(InvalidInputError, match="prefix has 12 tokens"):
        evaluate_step(model, prefix, TARGET, scores[:10], config=FAST)
    with pytest.raises(InvalidInputError, match="perturbable has shape"):
        evaluate_step(model, prefix, TARGET, scores, perturbable=torch.ones(5, dtype=torch.bool), config=FAST)
    with pytest.raises(InvalidInputError, match="never perturbed"):
        evaluate_step(model, prefix, TARGET, scores, perturbable=torch.ones(12, dtype=torch.bool), config=FAST)
    with pytest.raises(InvalidInputError, match="outside the model's vocabulary"):
        evaluate_step(model, prefix, 99, scores, config=FAST)
    with pytest.raises(InvalidInputError, match="No perturbable position"):
        evaluate_step(model, prefix[:1], TARGET, scores[:1], config=FAST)
    with pytest.raises(InvalidInputError, match="outside the vocabulary"):
        evaluate_step(tiny_model, torch.tensor([1, 2, 10_000]), 5, torch.rand(3), config=FAST)
    with pytest.raises(InvalidInputError, match="Cannot perturb"):
        evaluate_step(object(), prefix, TARGET, scores, config=FAST)
    with pytest.raises(InvalidInputError, match="FaithfulnessConfig"):
        evaluate_step(model, prefix, TARGET, scores, config={"n_draws": 2})


# ---- real model ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_grad_ellm_beats_random_on_pi_soft_nc_smollm2(smollm2):
    from gradellm_lens import explain

    config = FaithfulnessConfig(pis=(0.1, 0.3, 0.5, 0.7, 0.9), n_draws=1)
    prompts = [
        "The capital of France is Paris, and the capital of Italy is",
        "Review: the film was a wonderful, moving experience.\nSentiment:",
    ]
    gen = torch.Generator().manual_seed(0)
    ours, rand = [], []
    for prompt in prompts:
        result = explain(smollm2, prompt, max_new_tokens=2)
        for t, score in enumerate(evaluate_result(smollm2, result, config=config)):
            length = result.step_positions[t] + 1
            random_scores = torch.rand(length, generator=gen)
            baseline = evaluate_step(
                smollm2, result.token_ids[:length], result.target_ids[t], random_scores, config=config
            )
            assert not score.degenerate and 0 <= score.auc_pi_nc <= 1
            ours.append(score.auc_pi_nc)
            rand.append(baseline.auc_pi_nc)
    assert sum(ours) / len(ours) > sum(rand) / len(rand), (ours, rand)


# ---- shared unperturbed head (frozen keys/values) ----------------------------------------------------


def _step_results(model, prefix, target, scores, perturbable, config):
    reference = step_reference(model, prefix, target, perturbable=perturbable)
    out = evaluate_step(model, prefix, target, scores, perturbable=perturbable, config=config, reference=reference)
    return reference, out


def _assert_same_scores(a, b, tol=1e-5):
    for field, value in a.to_dict().items():
        other = b.to_dict()[field]
        if isinstance(value, float) or (isinstance(value, list) and value and isinstance(value[0], float)):
            assert value == pytest.approx(other, abs=tol), field
        else:
            assert value == other, field


@pytest.mark.parametrize("span", [(1, 11), (5, 10), (9, 11)])
def test_frozen_head_gives_the_whole_prefix_results(tiny_model, tiny_ids, monkeypatch, span):
    """Positions before the first perturbable one run once per step; every result is unchanged."""
    from gradellm_lens.metrics import perturb

    prefix, target = tiny_ids[:11], Target(int(tiny_ids[11]))
    scores, perturbable = torch.rand(11), span_mask(11, *span)
    tails = []
    real_tail = perturb.tail_forward

    def spy(model, tail, frozen, **kwargs):
        tails.append((frozen.length, tail.shape))
        return real_tail(model, tail, frozen, **kwargs)

    monkeypatch.setattr(perturb, "tail_forward", spy)
    ref_fast, fast = _step_results(tiny_model, prefix, target, scores, perturbable, FAST)
    assert tails and {(h, n) for h, (_, n) in tails} == {(span[0], 11 - span[0])}  # the head never runs again
    whole = perturb.BridgeMaskedForward(tiny_model, share_head=False)
    ref_full, full = _step_results(whole, prefix, target, scores, perturbable, FAST)
    torch.testing.assert_close(ref_fast.full, ref_full.full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ref_fast.empty, ref_full.empty, atol=1e-6, rtol=1e-5)
    _assert_same_scores(fast, full)


def test_frozen_head_is_not_used_under_model_hooks(tiny_model, tiny_ids, monkeypatch):
    from gradellm_lens.metrics import perturb

    monkeypatch.setattr(perturb, "tail_forward", lambda *a, **k: pytest.fail("ran a tail under an installed hook"))
    with tiny_model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook=None: x)]):
        evaluate_step(tiny_model, tiny_ids[:10], Target(3), torch.rand(10), perturbable=span_mask(10, 5, 9), config=FAST)


@pytest.mark.slow
def test_frozen_head_on_a_chat_prompt_smollm2(smollm2):
    """User-text perturbation of an SST-2 chat prompt: the system prompt and instruction are the head."""
    from gradellm_lens.metrics import perturb
    from gradellm_lens.tasks import make_task

    task = make_task("sst2", prompt_format="chat")
    prompted = task.prompt(smollm2, next(iter(task.load(n=1))))
    ids, (start, end) = prompted.token_ids, prompted.user_spans[0]
    target, scores = Target(int(smollm2(ids[None])[0, -1].argmax())), torch.rand(len(ids))
    perturbable = span_mask(len(ids), start, end)
    config = FaithfulnessConfig(n_draws=2)
    _, fast = _step_results(smollm2, ids, target, scores, perturbable, config)
    _, full = _step_results(perturb.BridgeMaskedForward(smollm2, share_head=False), ids, target, scores, perturbable, config)
    # float32 through 30 layers: the cached head and the full prefix round differently (1.2e-5 seen on CI)
    _assert_same_scores(fast, full, tol=1e-4)


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
