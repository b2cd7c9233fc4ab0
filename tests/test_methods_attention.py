"""Raw attention, attention rollout and attention x gradient vs plain HF (``output_attentions=True``)."""

from __future__ import annotations

import pytest
import torch

from gradellm_lens import InvalidInputError, Step, Target, get_method
from gradellm_lens.methods.attention import rollout

TOL = dict(atol=1e-6, rtol=1e-5)


def _steps(ids, positions):
    return [Step(p, Target(int(ids[p + 1]))) for p in positions]


def hf_attentions(hf, ids, position):
    """The HF model's per-layer patterns ``[layer, head, query, key]`` for the prefix of ``position``."""
    with torch.no_grad():
        return torch.stack(hf(ids[None, : position + 1], output_attentions=True).attentions)[:, 0]


@pytest.mark.parametrize("layers", ["last", "mean"])
def test_raw_attention_matches_hf(tiny_model, tiny_hf, tiny_ids, layers):
    positions = [0, 4, len(tiny_ids) - 2]
    out = get_method("attention")(tiny_model, layers=layers).attribute(tiny_ids, _steps(tiny_ids, positions))
    n_layers = tiny_hf.config.num_hidden_layers
    assert out.layers == ((n_layers - 1,) if layers == "last" else tuple(range(n_layers)))
    for row, p in enumerate(positions):
        att = hf_attentions(tiny_hf, tiny_ids, p)[list(out.layers), :, p, :]  # [layer, head, key]
        torch.testing.assert_close(out.layer_head[row, :, :, : p + 1], att, **TOL)
        torch.testing.assert_close(out.scores[row, : p + 1], att.mean(dim=(0, 1)), **TOL)
        torch.testing.assert_close(out.scores[row, : p + 1].sum(), torch.tensor(1.0), **TOL)


def test_rollout_hand_computed_two_layers():
    """Â = 0.5 A + 0.5 I, R = Â_1 Â_0; every number below is worked out by hand."""
    a0 = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    a1 = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.4, 0.0], [0.1, 0.1, 0.8]])
    # Â_0 = [[1, 0, 0], [.25, .75, 0], [.1, .15, .75]];  Â_1 = [[1, 0, 0], [.3, .7, 0], [.05, .05, .9]]
    # row 1: .3 * [1, 0, 0] + .7 * [.25, .75, 0]                       = [.475, .525, 0]
    # row 2: .05 * [1, 0, 0] + .05 * [.25, .75, 0] + .9 * [.1, .15, .75] = [.1525, .1725, .675]
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.475, 0.525, 0.0], [0.1525, 0.1725, 0.675]])
    torch.testing.assert_close(rollout(torch.stack([a0, a1])), expected)
    # the product order matters: Â_0 Â_1 gives row 2 = [.1825, .1425, .675]
    assert not torch.allclose(rollout(torch.stack([a1, a0])), expected)


def test_rollout_residual_weight_extremes():
    patterns = torch.softmax(torch.randn(3, 5, 5).masked_fill(torch.ones(5, 5).triu(1).bool(), -torch.inf), -1)
    torch.testing.assert_close(rollout(patterns, residual_weight=1.0), torch.eye(5))
    torch.testing.assert_close(rollout(patterns, residual_weight=0.0), patterns[2] @ patterns[1] @ patterns[0])


def test_rollout_method_matches_hf(tiny_model, tiny_hf, tiny_ids):
    positions = [3, len(tiny_ids) - 2]
    out = get_method("attention_rollout")(tiny_model).attribute(tiny_ids, _steps(tiny_ids, positions))
    for row, p in enumerate(positions):
        mean = hf_attentions(tiny_hf, tiny_ids, p).mean(dim=1).double()  # [layer, q, k]
        eye = torch.eye(p + 1, dtype=torch.float64)
        product = eye
        for layer in range(mean.shape[0]):  # layer 0 first: R = Â_{L-1} ... Â_0
            product = (0.5 * mean[layer] + 0.5 * eye) @ product
        torch.testing.assert_close(out.scores[row, : p + 1].double(), product[p], **TOL)
    assert out.layer_head is None


def hf_attention_x_gradient(hf, ids, position, target, layers):
    """Plain HF autograd on ``output_attentions``: ``[layer, head, key]`` of A ⊙ dy/dA at the last query."""
    out = hf(ids[None, : position + 1], output_attentions=True)
    attentions = [out.attentions[layer] for layer in layers]
    grads = torch.autograd.grad(out.logits[0, position, target], attentions)
    return torch.stack([(a * g)[0, :, position, :] for a, g in zip(attentions, grads)]).detach()


@pytest.mark.parametrize("layers,expected", [("all", (0, 1)), (1, (1,)), ([0], (0,))])
def test_attention_x_gradient_matches_hf(tiny_model, tiny_hf, tiny_ids, layers, expected):
    positions = [2, 7, len(tiny_ids) - 2]
    method = get_method("attention_x_gradient")(tiny_model, layers=layers)
    out = method.attribute(tiny_ids, _steps(tiny_ids, positions))
    assert out.layers == expected and method.describe()["layers"] == list(expected)
    for row, p in enumerate(positions):
        ref = hf_attention_x_gradient(tiny_hf, tiny_ids, p, int(tiny_ids[p + 1]), expected)
        torch.testing.assert_close(out.layer_head[row, :, :, : p + 1], ref, **TOL)
        torch.testing.assert_close(out.scores[row, : p + 1], ref.clamp(min=0).sum(dim=(0, 1)), **TOL)
        assert torch.isnan(out.layer_head[row, :, :, p + 1 :]).all()


@pytest.mark.parametrize(
    "name,options,match",
    [
        ("attention", dict(layers="first"), "layers='first' is invalid"),
        ("attention_rollout", dict(residual_weight=1.5), r"residual_weight must be a number in \[0, 1\]"),
        ("attention_x_gradient", dict(layers=[7]), "Layer index 7 is out of range"),
        ("attention_x_gradient", dict(layers="last"), "layers must be an int K"),
    ],
)
def test_bad_options(tiny_model, name, options, match):
    with pytest.raises(InvalidInputError, match=match):
        get_method(name)(tiny_model, **options)


@pytest.mark.slow
def test_attention_methods_match_hf_smollm2(smollm2, smollm2_hf):
    ids = torch.tensor(smollm2.tokenizer("The capital of France is Paris").input_ids)
    p, target = len(ids) - 2, int(ids[-1])
    steps = [Step(p, Target(target))]
    att = get_method("attention")(smollm2, layers="mean").attribute(ids, steps)
    expected = hf_attentions(smollm2_hf, ids, p)[:, :, p].mean(dim=(0, 1))
    torch.testing.assert_close(att.scores[0, : p + 1], expected, atol=1e-5, rtol=1e-4)
    axg = get_method("attention_x_gradient")(smollm2, layers=[27, 29]).attribute(ids, steps)
    ref = hf_attention_x_gradient(smollm2_hf, ids, p, target, (27, 29))
    torch.testing.assert_close(axg.layer_head[0, :, :, : p + 1], ref, atol=1e-5, rtol=1e-3)
