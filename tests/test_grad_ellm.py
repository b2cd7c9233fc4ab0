"""Grad-ELLM on TransformerLens hooks vs an independent plain-PyTorch reference on the HF model; all-negative
layer maps and NaN/inf in the forward or backward pass."""

from __future__ import annotations

import itertools

import pytest
import torch

from gradellm_lens import GradEllm, InvalidInputError, NumericalError, Step, Target
from gradellm_lens.capture import hook_count
from gradellm_lens.methods.grad_ellm import VARIANTS, GradEllmOptions
from gradellm_lens.numerics import flat_rows
from faults import nan_at, nan_gradient
from reference import reference_grad_ellm

SWITCHES = list(
    itertools.product(
        ("pre_o", "post_o"),
        ("loosened", "softmax", "pattern", "rope_minmax", "none"),
        ("grouped", "legacy_repeat"),
    )
)


def _steps(ids, positions):
    return [Step(p, Target(int(ids[p + 1]))) for p in positions]


def _check_against_reference(model, hf, ids, positions, layers, combine="relu_then_sum", **switches):
    method = GradEllm(model, layers=layers, combine=combine, **switches)
    out = method.attribute(ids, _steps(ids, positions))
    for row, p in enumerate(positions):
        ref, per_head = reference_grad_ellm(
            hf, ids, p, int(ids[p + 1]), layers=list(method.layers), combine=combine, **switches
        )
        torch.testing.assert_close(out.scores[row, : p + 1].double(), ref, atol=1e-5, rtol=1e-4)
        assert torch.isnan(out.scores[row, p + 1 :]).all()
        for li, layer in enumerate(method.layers):
            torch.testing.assert_close(out.layer_head[row, li, :, : p + 1].double(), per_head[layer], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("gradient_source,spatial,kv_expansion", SWITCHES)
@pytest.mark.parametrize("layers", [1, "all"])
def test_matches_reference_tiny(tiny_model, tiny_hf, tiny_ids, gradient_source, spatial, kv_expansion, layers):
    _check_against_reference(
        tiny_model, tiny_hf, tiny_ids, [3, 7, len(tiny_ids) - 2], layers,
        gradient_source=gradient_source, spatial=spatial, kv_expansion=kv_expansion,
    )  # fmt: skip


def test_sum_then_relu_matches_reference(tiny_model, tiny_hf, tiny_ids):
    _check_against_reference(tiny_model, tiny_hf, tiny_ids, [5, 9], "all", combine="sum_then_relu")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_named_variants_match_reference(tiny_model, tiny_hf, tiny_ids, variant):
    opts = GradEllmOptions(**VARIANTS[variant])
    method = GradEllm(tiny_model, variant=variant)
    out = method.attribute(tiny_ids, _steps(tiny_ids, [6]))
    ref, _ = reference_grad_ellm(
        tiny_hf, tiny_ids, 6, int(tiny_ids[7]), layers=list(method.layers), gradient_source=opts.gradient_source,
        spatial=opts.spatial, kv_expansion=opts.kv_expansion, combine=opts.combine,
    )  # fmt: skip
    torch.testing.assert_close(out.scores[0, :7].double(), ref, atol=1e-5, rtol=1e-4)
    assert method.describe()["variant"] == variant


@pytest.mark.parametrize("combine", ["sum_then_relu", "relu_then_sum"])
def test_heads_sum_to_layer_map_before_relu(tiny_model, tiny_ids, combine):
    out = GradEllm(tiny_model, combine=combine).attribute(tiny_ids, _steps(tiny_ids, [4, 8]))
    layer_maps = out.layer_head.sum(dim=2)  # [step, layer, pos]
    expected = layer_maps.sum(dim=1).clamp(min=0) if combine == "sum_then_relu" else layer_maps.clamp(min=0).sum(dim=1)
    torch.testing.assert_close(expected, out.scores, equal_nan=True)
    assert out.layers == (0, 1)  # every layer by default
    assert (out.scores.nan_to_num() >= 0).all()


def test_the_default_is_every_layer_summed_before_the_relu_and_the_old_one_is_a_variant(tiny_model, tiny_ids):
    """The default configuration (chosen by the study in analyses/results/grad-ellm-study) and the named
    variants that keep the earlier settings reachable: the 0.2 default and the released code, both last-layer."""
    steps = _steps(tiny_ids, [8])
    default = GradEllm(tiny_model)
    assert (default.options.layers, default.options.combine) == ("all", "sum_then_relu")
    last = GradEllm(tiny_model, variant="last_layer")
    assert last.layers == (1,) and last.options.combine == "relu_then_sum"
    assert last.options.gradient_source == "pre_o" and last.options.spatial == "loosened"
    reference = GradEllm(tiny_model, variant="reference")
    assert reference.layers == (1,) and reference.options.gradient_source == "post_o"
    torch.testing.assert_close(
        last.attribute(tiny_ids, steps).scores,
        GradEllm(tiny_model, layers=1, combine="relu_then_sum").attribute(tiny_ids, steps).scores,
        equal_nan=True,
    )


def test_pattern_variant_is_gradient_times_activation(tiny_model, tiny_ids):
    """With the model's own softmax pattern, sum_i c_i = g . o_p exactly (a completeness check)."""
    from gradellm_lens.capture import capture_gradients

    p, target = 6, int(tiny_ids[7])
    out = GradEllm(tiny_model, spatial="pattern", layers=[1]).attribute(tiny_ids, [Step(p, Target(target))])
    cap = capture_gradients(
        tiny_model, tiny_ids[None, : p + 1], grad_names=["blocks.1.attn.hook_z"],
        objective=lambda lg: lg[0, p, target],
    )  # fmt: skip
    g_dot_o = (cap.gradients["blocks.1.attn.hook_z"][0, p] * cap.activations["blocks.1.attn.hook_z"][0, p]).sum()
    torch.testing.assert_close(out.layer_head[0, 0].nansum(), g_dot_o, atol=1e-5, rtol=1e-4)


def test_shared_forward_equals_separate_passes(tiny_model, tiny_ids):
    steps = _steps(tiny_ids, range(2, len(tiny_ids) - 1))
    shared = GradEllm(tiny_model, layers="all").attribute(tiny_ids, steps)
    separate = GradEllm(tiny_model, layers="all", share_forward=False).attribute(tiny_ids, steps)
    torch.testing.assert_close(shared.scores, separate.scores, equal_nan=True, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(shared.layer_head, separate.layer_head, equal_nan=True, atol=1e-6, rtol=1e-5)


def test_deterministic(tiny_model, tiny_ids):
    steps = _steps(tiny_ids, [5, 9])
    a = GradEllm(tiny_model, layers="all").attribute(tiny_ids, steps)
    b = GradEllm(tiny_model, layers="all").attribute(tiny_ids, steps)
    assert torch.equal(a.scores.nan_to_num(-1), b.scores.nan_to_num(-1))


def test_no_hooks_or_param_grads_left(tiny_model, tiny_ids, monkeypatch):
    before = hook_count(tiny_model)
    GradEllm(tiny_model, layers="all").attribute(tiny_ids, _steps(tiny_ids, [5]))
    assert hook_count(tiny_model) == before
    assert all(p.grad is None for p in tiny_model.parameters())

    def boom(self, logits):
        raise RuntimeError("injected failure inside the forward/backward")

    monkeypatch.setattr(Target, "__call__", boom)
    with pytest.raises(RuntimeError, match="injected"):
        GradEllm(tiny_model).attribute(tiny_ids, _steps(tiny_ids, [5]))
    assert hook_count(tiny_model) == before
    assert all(p.grad is None for p in tiny_model.parameters())


def test_works_under_no_grad_but_not_inference_mode(tiny_model, tiny_ids):
    steps = _steps(tiny_ids, [5])
    expected = GradEllm(tiny_model).attribute(tiny_ids, steps).scores
    with torch.no_grad():
        got = GradEllm(tiny_model).attribute(tiny_ids, steps).scores
    torch.testing.assert_close(got, expected, equal_nan=True)
    with torch.inference_mode(), pytest.raises(InvalidInputError, match="inference_mode"):
        GradEllm(tiny_model).attribute(tiny_ids, steps)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(layers=[5]), "Layer index 5 is out of range"),
        (dict(layers=3), "only 2 layers"),
        (dict(layers=0), "at least 1"),
        (dict(layers=[]), "empty"),
        (dict(spatial="cosine"), "spatial='cosine' is invalid"),
        (dict(variant="refrence"), "Did you mean 'reference'"),
        (dict(lyers=1), "Did you mean 'layers'"),
    ],
)
def test_bad_options(tiny_model, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        GradEllm(tiny_model, **kwargs)


def test_bad_inputs(tiny_model, tiny_ids):
    method = GradEllm(tiny_model)
    with pytest.raises(InvalidInputError, match="empty"):
        method.attribute(torch.tensor([], dtype=torch.long), [Step(0, Target(1))])
    with pytest.raises(InvalidInputError, match="outside the model's vocabulary"):
        method.attribute(tiny_ids, [Step(3, Target(10**6))])
    with pytest.raises(InvalidInputError, match="context of 128"):
        method.attribute(torch.ones(200, dtype=torch.long), [Step(3, Target(1))])
    with pytest.raises(InvalidInputError, match="outside the sequence"):
        method.attribute(tiny_ids, [Step(len(tiny_ids), Target(1))])
    with pytest.raises(InvalidInputError, match="non-negative integer"):
        Target(-3)


def test_half_precision_scores_are_float32(tiny_hf, tiny_tokenizer, tiny_ids):
    import copy

    from gradellm_lens import load_model

    model = load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, dtype="bfloat16", device="cpu")
    out = GradEllm(model, layers="all").attribute(tiny_ids, _steps(tiny_ids, [6]))
    assert out.scores.dtype == torch.float32 and out.layer_head.dtype == torch.float32
    ref = GradEllm(load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu"), layers="all")
    expected = ref.attribute(tiny_ids, _steps(tiny_ids, [6])).scores
    assert torch.isfinite(out.scores[0, :7]).all()
    # bf16 activations: same ranking of the top token, scores within bf16 precision
    assert int(out.scores[0, :7].argmax()) == int(expected[0, :7].argmax())


@pytest.mark.slow
@pytest.mark.parametrize("gradient_source,spatial,kv_expansion", SWITCHES)
def test_matches_reference_smollm2(smollm2, smollm2_hf, gradient_source, spatial, kv_expansion):
    ids = torch.tensor(smollm2.tokenizer("The quick brown fox jumps over the lazy dog because").input_ids)
    _check_against_reference(
        smollm2, smollm2_hf, ids, [len(ids) - 2], [27, 29],
        gradient_source=gradient_source, spatial=spatial, kv_expansion=kv_expansion,
    )  # fmt: skip


def test_all_negative_layer_maps_give_flagged_zeros_not_nan(tiny_model):
    """Grad-ELLM's ReLU zeroes a map whose every layer is negative; it is reported, not rescaled.

    On a one-token prefix (gradient x value, no spatial weight) swapping target and contrast negates
    the layer map, so exactly one order is negative: its score is 0 and flagged; the other is kept.
    """
    method = GradEllm(tiny_model, variant="no_spatial", layers=[1])
    outs = [method.attribute([1], [Step(0, Target(x, y))]) for x, y in ((33, 40), (40, 33))]
    layer_maps = [float(o.layer_head.sum(dim=2)[0, 0, 0]) for o in outs]
    assert layer_maps[0] == pytest.approx(-layer_maps[1]) and layer_maps[0] != 0
    negative, positive = sorted(outs, key=lambda o: float(o.layer_head.sum()))
    assert negative.scores.tolist() == [[0.0]] and flat_rows(negative.scores).tolist() == [True]
    assert positive.scores[0, 0] > 0 and flat_rows(positive.scores).tolist() == [False]
    # loosened attention over a single key is constant, so lambda = 0 by convention: also flat zeros
    loosened = GradEllm(tiny_model).attribute([1], [Step(0, Target(33))])
    assert loosened.scores.tolist() == [[0.0]] and flat_rows(loosened.scores).tolist() == [True]


VARIANT_NAMES = sorted(VARIANTS)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize(
    "hook_name,hook,match",
    [
        ("blocks.0.hook_resid_post", nan_at(slice(None)), "objective is not finite"),
        ("blocks.1.attn.hook_z", nan_at(slice(None)), "objective is not finite"),
        ("blocks.0.hook_resid_post", lambda t, hook: t * float("inf"), "objective is not finite"),
        ("blocks.0.hook_resid_post", nan_gradient, "gradient at hook point .* contains NaN/inf"),
        ("blocks.1.hook_resid_mid", nan_gradient, "gradient at hook point .* contains NaN/inf"),
    ],
)
def test_nan_in_forward_or_backward_raises_numerical_error(tiny_model, tiny_ids, variant, hook_name, hook, match):
    steps = [Step(p, Target(int(tiny_ids[p + 1]))) for p in (3, 6)]
    with tiny_model.hooks(fwd_hooks=[(hook_name, hook)]), pytest.raises(NumericalError, match=match):
        GradEllm(tiny_model, variant=variant, layers="all").attribute(tiny_ids, steps)
