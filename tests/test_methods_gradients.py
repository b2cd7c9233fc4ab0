"""Saliency, input x gradient and integrated gradients vs captum 0.9 on the pristine HF model.

The oracle runs plain captum on the unbridged ``transformers`` model, attributing at its embedding
layer ``model.model.embed_tokens`` for the prefix of one step only (so it also checks that our
shared forward over the longest prefix gives each step's own prefix attribution). Tolerances:
float32 models, atol 1e-5 / rtol 1e-4 on the tiny model (scores of order 1e-3 .. 10); SmolLM2
(30 layers) atol 1e-4 / rtol 1e-3.
"""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import LayerGradientXActivation, Saliency
from captum.attr._utils.approximation_methods import approximation_parameters

from gradellm_lens import InvalidInputError, Step, Target, get_method
from gradellm_lens.capture import hook_count
from gradellm_lens.methods.gradients import INTEGRATIONS, quadrature

TINY_TOL = dict(atol=1e-5, rtol=1e-4)
SMOL_TOL = dict(atol=1e-4, rtol=1e-3)


def _steps(ids, positions, contrast=None):
    return [Step(p, Target(int(ids[p + 1]), contrast)) for p in positions]


def _score_fn(hf, position, target, contrast=None):
    """``f(x) -> [batch]``: the explained logit (minus the contrast logit) at ``position``."""

    def score(logits):
        out = logits[:, position, target]
        return out if contrast is None else out - logits[:, position, contrast]

    return score


def captum_reference(hf, ids, position, target, kind, contrast=None, **ig_kwargs):
    """Plain captum on the HF model for the prefix ``ids[: position + 1]``: ``[position + 1]`` scores."""
    prefix = ids[None, : position + 1]
    score = _score_fn(hf, position, target, contrast)
    embed = hf.model.embed_tokens
    if kind == "input_x_gradient":
        attr = LayerGradientXActivation(lambda x: score(hf(input_ids=x).logits), embed).attribute(prefix)
        return attr[0].sum(-1)
    inputs = embed(prefix).detach().requires_grad_(True)
    forward = lambda e: score(hf(inputs_embeds=e).logits)  # noqa: E731
    if kind == "saliency":
        return Saliency(forward).attribute(inputs, abs=False)[0].norm(dim=-1)
    attr = CaptumIG(forward).attribute(inputs, baselines=torch.zeros_like(inputs), **ig_kwargs)
    return attr[0].sum(-1)


def _check(model, hf, ids, positions, method, tol, contrast=None, **options):
    captum_kwargs = {}
    if method == "integrated_gradients":
        captum_kwargs = dict(
            n_steps=options.get("n_steps", 50),
            method=options.get("integration", "gausslegendre"),
            internal_batch_size=options.get("batch_size", 16),
        )
    sign = {"sign": "raw"} if get_method(method).signed else {}
    out = get_method(method)(model, **sign, **options).attribute(ids, _steps(ids, positions, contrast))
    for row, p in enumerate(positions):
        ref = captum_reference(hf, ids, p, int(ids[p + 1]), method, contrast, **captum_kwargs)
        torch.testing.assert_close(out.scores[row, : p + 1], ref.detach().float(), **tol)
        assert torch.isnan(out.scores[row, p + 1 :]).all()


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "integrated_gradients"])
def test_matches_captum_tiny(tiny_model, tiny_hf, tiny_ids, method):
    _check(tiny_model, tiny_hf, tiny_ids, [2, 6, len(tiny_ids) - 2], method, TINY_TOL)


@pytest.mark.parametrize("integration", ["riemann_trapezoid", "riemann_middle"])
def test_integrated_gradients_riemann_matches_captum(tiny_model, tiny_hf, tiny_ids, integration):
    _check(
        tiny_model, tiny_hf, tiny_ids, [5], "integrated_gradients", TINY_TOL,
        n_steps=12, integration=integration, batch_size=5,
    )  # fmt: skip


def test_contrast_matches_captum(tiny_model, tiny_hf, tiny_ids):
    _check(tiny_model, tiny_hf, tiny_ids, [4, 8], "input_x_gradient", TINY_TOL, contrast=7)


@pytest.mark.parametrize("rule", INTEGRATIONS)
def test_quadrature_is_captums(rule):
    step_sizes, alphas = approximation_parameters(rule)
    nodes, weights = quadrature(9, rule)
    torch.testing.assert_close(nodes, torch.tensor(alphas(9), dtype=torch.float64))
    torch.testing.assert_close(weights, torch.tensor(step_sizes(9), dtype=torch.float64))


def test_integrated_gradients_completeness(tiny_model, tiny_ids):
    """Raw IG scores sum to y(e) - y(0) (the zero-embedding baseline), here for a contrast target.

    The tiny model's embeddings are small (rms 0.02), so RMSNorm switches on within alpha < 0.05 and
    the integrand is steep there: 64 nodes are 30% off, 1024 Gauss-Legendre nodes converge to 1e-5.
    """
    p, target, contrast = 7, int(tiny_ids[8]), 11
    method = get_method("integrated_gradients")(tiny_model, sign="raw", n_steps=1024, batch_size=256)
    out = method.attribute(
        tiny_ids, [Step(p, Target(target, contrast))]
    )
    zero = lambda x, hook: torch.zeros_like(x)  # noqa: E731
    with torch.no_grad():
        full = tiny_model(tiny_ids[None, : p + 1])[0, p]
        empty = tiny_model.run_with_hooks(tiny_ids[None, : p + 1], fwd_hooks=[("hook_embed", zero)])[0, p]
    expected = (full[target] - full[contrast]) - (empty[target] - empty[contrast])
    torch.testing.assert_close(out.scores[0, : p + 1].sum(), expected, atol=1e-4, rtol=1e-3)


def _ends(model, ids, p, target):
    """Independent y(e) - y(0): a plain forward, and one with the embeddings zeroed."""
    zero = lambda x, hook: torch.zeros_like(x)  # noqa: E731
    with torch.no_grad():
        full = model(ids[None, : p + 1])[0, p, target]
        empty = model.run_with_hooks(ids[None, : p + 1], fwd_hooks=[("hook_embed", zero)])[0, p, target]
    return float(full - empty)


def test_integrated_gradients_reports_its_completeness_gap(tiny_model, tiny_ids):
    from gradellm_lens.methods import CompletenessWarning

    steps = _steps(tiny_ids, [3, 8])
    with pytest.warns(CompletenessWarning, match=r"at 2 of 2 step\(s\).*raise n_steps"):
        coarse = get_method("integrated_gradients")(tiny_model, n_steps=2).attribute(tiny_ids, steps)
    raw = get_method("integrated_gradients")(tiny_model, n_steps=2, sign="raw", completeness_tolerance=float("inf"))
    out = raw.attribute(tiny_ids, steps)
    for t, step in enumerate(steps):
        expected = float(out.scores[t, : step.position + 1].sum()) - _ends(tiny_model, tiny_ids, step.position, step.target.token_id)
        assert coarse.diagnostics["completeness_gap"][t] == pytest.approx(expected, abs=1e-5)
    assert out.diagnostics["completeness_gap"] == coarse.diagnostics["completeness_gap"]  # raw, whatever the sign option
    fine = get_method("integrated_gradients")(tiny_model, n_steps=1024, batch_size=256).attribute(tiny_ids, steps)
    assert max(abs(g) for g in fine.diagnostics["completeness_gap"]) < 1e-4


def test_batch_size_does_not_change_integrated_gradients(tiny_model, tiny_ids):
    steps = _steps(tiny_ids, [3, 9])
    method = get_method("integrated_gradients")
    one = method(tiny_model, n_steps=10, batch_size=1, sign="raw").attribute(tiny_ids, steps)
    many = method(tiny_model, n_steps=10, batch_size=64, sign="raw").attribute(tiny_ids, steps)
    torch.testing.assert_close(one.scores, many.scores, equal_nan=True, atol=1e-6, rtol=1e-5)


def test_interpolations_run_batched(tiny_model, tiny_ids, monkeypatch):
    """n_steps=10 with batch_size=4 is 3 forward passes (4 + 4 + 2 rows), not 10."""
    import gradellm_lens.methods.objectives as objectives

    batches = []
    real = objectives.capture_gradients

    def spy(model, tokens, **kwargs):
        batches.append(tokens.shape[0])
        return real(model, tokens, **kwargs)

    monkeypatch.setattr(objectives, "capture_gradients", spy)
    get_method("integrated_gradients")(tiny_model, n_steps=10, batch_size=4).attribute(tiny_ids, _steps(tiny_ids, [5]))
    assert batches == [4, 4, 2]


def test_sign_handling(tiny_model, tiny_ids):
    steps = _steps(tiny_ids, [4, 9])
    raw = get_method("input_x_gradient")(tiny_model, sign="raw").attribute(tiny_ids, steps).scores
    pos = get_method("input_x_gradient")(tiny_model).attribute(tiny_ids, steps).scores
    absolute = get_method("input_x_gradient")(tiny_model, sign="abs").attribute(tiny_ids, steps).scores
    assert (raw.nan_to_num() < 0).any()
    torch.testing.assert_close(pos, raw.clamp(min=0), equal_nan=True)
    torch.testing.assert_close(absolute, raw.abs(), equal_nan=True)


def test_no_hooks_or_param_grads_left(tiny_model, tiny_ids):
    before = hook_count(tiny_model)
    for name in ("saliency", "integrated_gradients"):
        get_method(name)(tiny_model, **({"n_steps": 4} if name == "integrated_gradients" else {})).attribute(
            tiny_ids, _steps(tiny_ids, [5])
        )
    assert hook_count(tiny_model) == before
    assert all(p.grad is None for p in tiny_model.parameters())


@pytest.mark.parametrize(
    "options,match",
    [
        (dict(n_steps=0), r"n_steps \(gausslegendre\) must be an integer >= 1"),
        (dict(n_steps=1, integration="riemann_left"), r"n_steps \(riemann_left\) must be an integer >= 2"),
        (dict(integration="simpson"), "integration='simpson' is invalid"),
        (dict(batch_size=0), "batch_size must be an integer >= 1"),
        (dict(nsteps=3), "Did you mean 'n_steps'"),
        (dict(completeness_tolerance=-1), "completeness_tolerance must be a number >= 0"),
        (dict(completeness_tolerance="0.1"), "completeness_tolerance must be a number >= 0"),
    ],
)
def test_bad_options(tiny_model, options, match):
    with pytest.raises(InvalidInputError, match=match):
        get_method("integrated_gradients")(tiny_model, **options)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["saliency", "input_x_gradient", "integrated_gradients"])
def test_matches_captum_smollm2(smollm2, smollm2_hf, method):
    ids = torch.tensor(smollm2.tokenizer("The capital of France is Paris").input_ids)
    options = {"n_steps": 8, "batch_size": 8} if method == "integrated_gradients" else {}
    _check(smollm2, smollm2_hf, ids, [len(ids) - 2], method, SMOL_TOL, **options)
