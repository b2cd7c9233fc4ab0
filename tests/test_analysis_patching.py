"""Activation and attribution patching against hand-written hook loops, the scorer statistics and the view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradellm_lens import InvalidInputError, Step, Target
from gradellm_lens.analysis import (
    HeadImportance,
    activation_patching,
    attribution_patching,
    layer_matched_order,
    scorer_agreement,
    spearman,
)


def _pair(tokenizer):
    clean = torch.tensor(tokenizer("the cat sat on the mat because it was a good").input_ids)
    corrupted = torch.tensor(tokenizer("the dog ran on the mat because it was a bad").input_ids)
    assert clean.shape == corrupted.shape
    return clean, corrupted


def _metric(logits, steps):
    """Mean over steps of the target value, written out by hand (logit or log-prob, with a contrast)."""
    values = []
    for s in steps:
        row = logits[0, s.position].float()
        if s.target.objective == "log_prob":
            row = torch.log_softmax(row, dim=-1)
        value = row[s.target.token_id] - (row[s.target.contrast_id] if s.target.contrast_id is not None else 0)
        values.append(value)
    return float(torch.stack(values).mean())


def _reference_patching(model, clean, corrupted, steps):
    """One head at a time with ``run_with_hooks``: the noising and denoising effects, [layer, head]."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean[None])
        _, corrupted_cache = model.run_with_cache(corrupted[None])
        base = {"noising": _metric(model(clean[None]), steps), "denoising": _metric(model(corrupted[None]), steps)}
        out = {d: torch.zeros(n_layers, n_heads) for d in base}
        for layer in range(n_layers):
            name = f"blocks.{layer}.attn.hook_z"
            for head in range(n_heads):
                for direction, run, source in (
                    ("noising", clean, corrupted_cache),
                    ("denoising", corrupted, clean_cache),
                ):

                    def patch(z, hook, head=head, source=source[name]):
                        z = z.clone()
                        z[:, :, head] = source[:, :, head]
                        return z

                    logits = model.run_with_hooks(run[None], fwd_hooks=[(name, patch)])
                    out[direction][layer, head] = _metric(logits, steps) - base[direction]
    return out, base


def _reference_attribution(model, clean, corrupted, steps):
    """Gradient x activation difference per head, from plain backward hooks on each run."""
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    acts, grads = {}, {}
    for run_name, tokens in (("clean", clean), ("corrupted", corrupted)):

        def keep(z, hook, key):
            acts[key] = z.detach().clone()

        def keep_grad(g, hook, key):
            grads[key] = g.detach().clone()

        fwd = [(n, lambda z, hook, key=(run_name, n): keep(z, hook, key)) for n in names]
        bwd = [(n, lambda g, hook, key=(run_name, n): keep_grad(g, hook, key)) for n in names]
        model.zero_grad(set_to_none=True)
        with torch.enable_grad(), model.hooks(fwd_hooks=fwd, bwd_hooks=bwd):
            logits = model(tokens[None])
            value = torch.stack(
                [logits[0, s.position, s.target.token_id] - logits[0, s.position, s.target.contrast_id] for s in steps]
            ).mean()
            value.backward()
        model.zero_grad(set_to_none=True)

    def per_head(delta, grad):
        return (delta * grad)[0].sum(dim=(0, 2))

    noising = torch.stack([per_head(acts["corrupted", n] - acts["clean", n], grads["clean", n]) for n in names])
    denoising = torch.stack([per_head(acts["clean", n] - acts["corrupted", n], grads["corrupted", n]) for n in names])
    return noising, denoising


def _steps(clean):
    n = len(clean)
    return [Step(n - 1, Target(7, contrast_id=9)), Step(n - 3, Target(11, contrast_id=5))]


def test_activation_patching_matches_a_head_by_head_hook_loop(tiny_model, tiny_tokenizer):
    clean, corrupted = _pair(tiny_tokenizer)
    steps = _steps(clean)
    expected, base = _reference_patching(tiny_model, clean, corrupted, steps)
    result = activation_patching(tiny_model, clean, corrupted, steps, batch_size=3)
    assert result.method == "activation" and result.layers == (0, 1)
    assert result.clean_metric == pytest.approx(base["noising"], abs=1e-5)
    assert result.corrupted_metric == pytest.approx(base["denoising"], abs=1e-5)
    torch.testing.assert_close(result.noising, expected["noising"], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(result.denoising, expected["denoising"], atol=2e-5, rtol=1e-4)
    assert result.noising.abs().max() > 1e-3  # the test can see a difference
    # oriented importance: positive = carries the clean behaviour
    torch.testing.assert_close(result.importance("noising").scores, -expected["noising"])
    torch.testing.assert_close(
        result.importance("denoising", normalise=True).scores, expected["denoising"] / result.gap
    )


def test_one_direction_and_layer_subset(tiny_model, tiny_tokenizer):
    clean, corrupted = _pair(tiny_tokenizer)
    target = Target(7, contrast_id=9)
    full = activation_patching(tiny_model, clean, corrupted, target)
    one = activation_patching(tiny_model, clean, corrupted, target, direction="denoising", layers=[1])
    assert one.noising is None and one.layers == (1,)
    torch.testing.assert_close(one.denoising, full.denoising[1:], atol=1e-6, rtol=0)
    assert (one.clean_metric, one.corrupted_metric) == pytest.approx((full.clean_metric, full.corrupted_metric))
    with pytest.raises(InvalidInputError, match="no noising effects"):
        one.importance("noising")


def test_attribution_patching_matches_hand_written_gradients(tiny_model, tiny_tokenizer):
    clean, corrupted = _pair(tiny_tokenizer)
    steps = _steps(clean)
    noising, denoising = _reference_attribution(tiny_model, clean, corrupted, steps)
    result = attribution_patching(tiny_model, clean, corrupted, steps)
    assert result.method == "attribution"
    torch.testing.assert_close(result.noising, noising, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(result.denoising, denoising, atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in tiny_model.parameters())  # parameter .grad never written
    # a first-order estimate of the measured effects: on this tiny random model it ranks them well
    truth = activation_patching(tiny_model, clean, corrupted, steps)
    assert spearman(result.noising.flatten(), truth.noising.flatten()) > 0.5


@pytest.mark.parametrize(
    ("corrupted", "metric", "match"),
    [
        (lambda c: c[:-1], Target(7), "same length"),
        (lambda c: c[None], Target(7), "one prompt"),
        (lambda c: c, Target(10**7), "outside the model's vocabulary"),
        (lambda c: c, [Step(99, Target(7))], "outside the sequence"),
    ],
)
def test_bad_input_is_named(tiny_model, tiny_tokenizer, corrupted, metric, match):
    clean, other = _pair(tiny_tokenizer)
    for fn in (activation_patching, attribution_patching):
        with pytest.raises(InvalidInputError, match=match):
            fn(tiny_model, clean, corrupted(other), metric)
    with pytest.raises(InvalidInputError, match="direction"):
        activation_patching(tiny_model, clean, other, Target(7), direction="both_ways")
    with pytest.raises(InvalidInputError, match="layers"):
        activation_patching(tiny_model, clean, other, Target(7), layers=[5])


def _imp(values):
    return HeadImportance(torch.as_tensor(values, dtype=torch.float32).reshape(2, 3), (0, 1), "test")


def test_scorer_agreement_perfect_reversed_and_bootstrap():
    gen = torch.Generator().manual_seed(0)
    truths = [_imp(torch.rand(6, generator=gen)) for _ in range(8)]
    same = scorer_agreement(truths, [_imp(t.scores * 3.0) for t in truths], ks=(1, 3), n_boot=200)
    assert same.spearman.mean == pytest.approx(1.0) and same.spearman.low == pytest.approx(1.0)
    assert same.recall[1].mean == 1.0 and same.recall[3].mean == 1.0
    assert same.per_prompt_spearman.mean == pytest.approx(1.0)
    reverse = scorer_agreement(truths, [_imp(-t.scores) for t in truths], ks=(3,), n_boot=200)
    assert reverse.spearman.mean == pytest.approx(-1.0) and reverse.recall[3].mean == 0.0
    noisy = scorer_agreement(truths, [_imp(torch.rand(6, generator=gen)) for _ in truths], n_boot=200, ks=(2,))
    assert noisy.spearman.low < noisy.spearman.mean < noisy.spearman.high  # an interval over prompts
    again = scorer_agreement(truths, [_imp(torch.rand(6, generator=torch.Generator().manual_seed(0))) for _ in truths],
                             n_boot=200, ks=(2,))  # fmt: skip
    assert (
        scorer_agreement(
            truths,
            [_imp(torch.rand(6, generator=torch.Generator().manual_seed(0))) for _ in truths],
            n_boot=200,
            ks=(2,),
        ).row()
        == again.row()
    )  # fmt: skip  (seeded)
    row = same.row()
    assert {"spearman", "spearman_low", "recall@3_high", "per_prompt_spearman"} <= set(row)


def test_scorer_agreement_pools_normalised_prompts():
    """A prompt with huge scores weighs no more than the others (each is divided by its Σ|·|)."""
    truths = [_imp([6, 5, 4, 3, 2, 1]), _imp([600, 500, 400, 300, 200, 100])]
    scores = [_imp([6, 5, 4, 3, 2, 1]), _imp([100, 200, 300, 400, 500, 600])]
    pooled = scorer_agreement(truths, scores, ks=(1,), n_boot=10)
    assert np.isnan(pooled.spearman.mean)  # the normalised scorer is constant after pooling: no ranking
    with pytest.raises(InvalidInputError, match="k = 7"):
        scorer_agreement(truths, scores, ks=(7,))
    with pytest.raises(InvalidInputError, match="2 prompts"):
        scorer_agreement(truths, scores[:1])


def test_layer_matched_order_keeps_layers_and_avoids_chosen_heads():
    order = [(3, 1), (3, 2), (0, 0), (5, 4), (3, 0)]
    control = layer_matched_order(order, n_heads=9, k=5, seed=1)
    assert [layer for layer, _ in control] == [layer for layer, _ in order]
    assert not set(control) & set(order) and len(set(control)) == 5
    assert control == layer_matched_order(order, n_heads=9, k=5, seed=1)
    assert control != layer_matched_order(order, n_heads=9, k=5, seed=2)
    full = [(0, h) for h in range(3)]  # a layer with no other head: the chosen ones are drawn, never twice
    assert sorted(layer_matched_order(full, n_heads=3, k=3, seed=0)) == full


def test_head_comparison_view_and_report(tmp_path):
    from gradellm_lens.viz import plot_head_comparison, write_report

    truth = _imp([0.1, -0.5, 2.0, 0.0, 0.3, 1.0])
    scorers = {"same": _imp([0.1, -0.5, 2.0, 0.0, 0.3, 1.0]), "other": _imp([1, 2, 3, 4, 5, 6])}
    fig = plot_head_comparison(truth, scorers, k=2)
    assert len(fig.axes) >= 3
    assert "ρ = 1.00, top-2 1.00" in fig.axes[1].get_title()
    assert len(fig.axes[0].patches) == 2  # the truth's top-2 outlined
    page = write_report([], tmp_path / "heads.html", head_truth=truth, head_scorers=scorers)
    text = page.read_text()
    assert "Heads: ground truth and scorers" in text and "data:image/png;base64" in text
    with pytest.raises(InvalidInputError, match="same layers|truth's layers"):
        plot_head_comparison(truth, {"bad": HeadImportance(torch.ones(1, 3), (0,), "x")})
    with pytest.raises(InvalidInputError, match="both head_truth and head_scorers"):
        write_report([], tmp_path / "x.html", head_truth=truth)


@pytest.mark.slow
def test_smollm2_patching_matches_hook_loops_on_some_heads(smollm2):
    """On SmolLM2 (30 x 9 heads, GQA), an IOI pair: batched patching equals one-head hook runs."""
    from gradellm_lens.tasks import make_task

    pair = make_task("ioi").pairs(smollm2, 1, seed=3)[0]
    steps = list(pair.steps)
    result = activation_patching(smollm2, pair.clean, pair.corrupted, steps, layers=[0, 14, 29])
    with torch.no_grad():
        _, cache = smollm2.run_with_cache(pair.corrupted[None])
        base = _metric(smollm2(pair.clean[None]), steps)
        for row, layer in enumerate((0, 14, 29)):
            name = f"blocks.{layer}.attn.hook_z"
            for head in (0, 4, 8):

                def patch(z, hook, head=head, name=name):
                    z = z.clone()
                    z[:, :, head] = cache[name][:, :, head]
                    return z

                expected = _metric(smollm2.run_with_hooks(pair.clean[None], fwd_hooks=[(name, patch)]), steps) - base
                assert float(result.noising[row, head]) == pytest.approx(expected, abs=2e-3)
    estimate = attribution_patching(smollm2, pair.clean, pair.corrupted, steps, layers=[0, 14, 29])
    assert estimate.clean_metric == pytest.approx(result.clean_metric, abs=1e-3)
    assert spearman(estimate.noising.flatten(), result.noising.flatten()) > 0.3
