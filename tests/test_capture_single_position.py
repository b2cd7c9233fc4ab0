"""Single-position step gradients (frozen prefix keys/values + live rows) against the full graph.

The full-graph path (one forward with gradients, one batched backward) is the independent check:
the two share no code beyond the hooks. Grad-ELLM's and attention x gradient's fast paths are also
checked against the plain-PyTorch HF references in ``test_grad_ellm.py`` / ``test_methods_attention.py``
(which run the default ``gradient_path="auto"``, i.e. the fast path on these models).
"""

from __future__ import annotations

import copy
import dataclasses
import logging

import pytest
import torch
from test_grad_ellm import SWITCHES, _steps

from gradellm_lens import InvalidInputError, load_model
from gradellm_lens.capture import frozen_prefix, hook_count, hook_name, step_gradients
from gradellm_lens.capture import single_position as sp
from gradellm_lens.methods import make_method
from gradellm_lens.targets import Step, Target


def _last_steps(ids, n):
    return _steps(ids, range(len(ids) - 1 - n, len(ids) - 1))


def _assert_same(a, b, rel=1e-5):
    """``max |a - b| <= rel * max |b|`` over the finite entries (NaN where the other is NaN)."""
    assert torch.equal(torch.isnan(a), torch.isnan(b))
    scale = b.nan_to_num().abs().max().clamp(min=1e-30)
    assert float((a - b).nan_to_num().abs().max() / scale) <= rel


def _same_method_output(model, name, ids, steps, **options):
    fast = make_method(name, model, **options).attribute(ids, steps)
    full = make_method(name, model, gradient_path="full_graph", **options).attribute(ids, steps)
    assert fast.diagnostics == {"gradient_path": "single_position"}
    assert full.diagnostics == {"gradient_path": "full_graph"}
    _assert_same(fast.scores, full.scores)
    _assert_same(fast.layer_head, full.layer_head)


@pytest.fixture
def fresh_tiny(tiny_hf, tiny_tokenizer):
    """A model object of its own: the self-check result is cached per model object."""
    return load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu")


@pytest.mark.parametrize("n_steps", [1, 10])
@pytest.mark.parametrize("layers", [[0], [1], "all"])
def test_step_gradients_equal_the_full_graph(tiny_model, tiny_ids, layers, n_steps):
    steps = _last_steps(tiny_ids, n_steps)
    layers = range(2) if layers == "all" else layers
    grads = [hook_name(kind, layer) for layer in layers for kind in ("z", "attn_out", "pattern", "attn_scores", "v")]
    acts = [hook_name("q", 1), hook_name("pattern", 0)]
    fast = step_gradients(tiny_model, tiny_ids, steps, grad_names=grads, act_names=acts)
    full = step_gradients(tiny_model, tiny_ids, steps, grad_names=grads, act_names=acts, path="full_graph")
    assert (fast.path, full.path) == ("single_position", "full_graph")
    _assert_same(fast.objective, full.objective)
    for name in grads:
        assert fast.gradients[name].shape == full.gradients[name].shape == fast.at_steps[name].shape
        _assert_same(fast.gradients[name], full.gradients[name])
        _assert_same(fast.at_steps[name], full.at_steps[name])
    for name in acts:
        torch.testing.assert_close(fast.activations[name], full.activations[name], atol=1e-6, rtol=1e-5)


def test_live_query_mask_sees_earlier_frozen_keys_and_only_its_own_live_key():
    visible = sp.live_query_mask(torch.tensor([3, 1, 4]), 5)
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0, 1, 0, 0],
            [1, 0, 0, 0, 0, 0, 1, 0],
            [1, 1, 1, 1, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(visible, expected)


def test_unordered_and_repeated_step_positions_stay_independent(tiny_model, tiny_ids):
    """The live queries share one sequence: steps in any order, and two steps at one position (a
    target and another token), get the gradients of separate computations."""
    positions = [7, 2, 5, 2]
    steps = [_steps(tiny_ids, [p])[0] for p in positions]
    steps[3] = Step(2, Target((steps[1].target.token_id + 1) % 50))  # another token at the same position
    grads = [hook_name(kind, layer) for layer in range(2) for kind in ("z", "pattern")]
    fast = step_gradients(tiny_model, tiny_ids, steps, grad_names=grads)
    full = step_gradients(tiny_model, tiny_ids, steps, grad_names=grads, path="full_graph")
    assert fast.path == "single_position"
    for name in grads:
        _assert_same(fast.gradients[name], full.gradients[name])
        _assert_same(fast.at_steps[name], full.at_steps[name])
    _assert_same(fast.objective, full.objective)


@pytest.mark.parametrize("gradient_source,spatial,kv_expansion", SWITCHES)
@pytest.mark.parametrize("layers,n_steps", [(1, 1), ("all", 10)])  # every combination: test_step_gradients_*
def test_grad_ellm_every_switch_equals_full_graph(
    tiny_model, tiny_ids, gradient_source, spatial, kv_expansion, layers, n_steps
):
    _same_method_output(
        tiny_model, "grad_ellm", tiny_ids, _last_steps(tiny_ids, n_steps), layers=layers,
        gradient_source=gradient_source, spatial=spatial, kv_expansion=kv_expansion,
    )  # fmt: skip


@pytest.mark.parametrize("combine", ["relu_then_sum", "sum_then_relu"])
@pytest.mark.parametrize("share_forward", [True, False])
def test_grad_ellm_combine_and_separate_passes_equal_full_graph(tiny_model, tiny_ids, combine, share_forward):
    steps = _steps(tiny_ids, [2, 5, 9])
    _same_method_output(
        tiny_model, "grad_ellm", tiny_ids, steps, layers="all", combine=combine, share_forward=share_forward
    )


@pytest.mark.parametrize("layers", [1, "all", [0]])
def test_attention_x_gradient_equals_full_graph(tiny_model, tiny_ids, layers):
    _same_method_output(tiny_model, "attention_x_gradient", tiny_ids, _steps(tiny_ids, [1, 4, 4, 10]), layers=layers)


def test_model_hooks_select_the_full_graph_and_apply(tiny_model, tiny_ids):
    """An ablation installed with model.hooks sees whole sequences, so the full graph runs (with it)."""
    steps = _steps(tiny_ids, [4, 8])
    z = hook_name("z", 0)

    def zero_head(x, hook=None):
        x = x.clone()
        x[:, :, 1] = 0.0
        return x

    plain = make_method("grad_ellm", tiny_model, layers="all").attribute(tiny_ids, steps)
    with tiny_model.hooks(fwd_hooks=[(z, zero_head)]):
        ablated = make_method("grad_ellm", tiny_model, layers="all").attribute(tiny_ids, steps)
        with pytest.raises(InvalidInputError, match="single_position"):
            make_method("grad_ellm", tiny_model, gradient_path="single_position").attribute(tiny_ids, steps)
    assert ablated.diagnostics["gradient_path"] == "full_graph"
    assert not torch.allclose(ablated.scores.nan_to_num(), plain.scores.nan_to_num())


def test_no_state_left_behind(tiny_model, tiny_ids, monkeypatch):
    """Hooks removed, no parameter gradients, the skipped blocks' forward restored (also after an error)."""
    steps = _steps(tiny_ids, [3, 9])
    grads = [hook_name("z", 1)]  # layer 0 is skipped: its input residual is a constant
    before = hook_count(tiny_model)

    def clean() -> bool:
        return (
            hook_count(tiny_model) == before
            and all("forward" not in block.__dict__ for block in tiny_model.blocks)
            and all("forward" not in layer.__dict__ for layer in tiny_model.original_model.model.layers)
            and all(p.grad is None for p in tiny_model.parameters())
        )

    assert step_gradients(tiny_model, tiny_ids, steps, grad_names=grads).path == "single_position"
    assert clean()

    def boom(*args):
        raise RuntimeError("injected failure inside the live pass")

    monkeypatch.setattr(sp, "stacked_values", boom)
    with pytest.raises(RuntimeError, match="injected"):
        step_gradients(tiny_model, tiny_ids, steps, grad_names=grads)
    assert clean()


def test_failed_self_check_falls_back_to_the_full_graph(fresh_tiny, tiny_ids, monkeypatch, caplog):
    """A bridge that ignored the frozen keys/values would give other gradients: the check catches it."""
    monkeypatch.setattr(frozen_prefix.FrozenKeysValues, "update", lambda self, k, v, layer_idx, *a, **kw: (k, v))
    steps = _steps(tiny_ids, [5, 9])
    with caplog.at_level(logging.INFO, logger="gradellm_lens.capture.frozen_prefix"):
        out = make_method("grad_ellm", fresh_tiny).attribute(tiny_ids, steps)
    assert out.diagnostics["gradient_path"] == "full_graph"
    assert "self-check" in caplog.text


def test_unsupported_model_uses_the_full_graph(fresh_tiny, tiny_ids, monkeypatch):
    from gradellm_lens.models import capabilities

    info = capabilities.model_info(fresh_tiny)
    monkeypatch.setitem(capabilities._INFO, fresh_tiny, dataclasses.replace(info, single_position=False))
    steps = _steps(tiny_ids, [5])
    assert make_method("attention_x_gradient", fresh_tiny).attribute(tiny_ids, steps).diagnostics == {
        "gradient_path": "full_graph"
    }
    with pytest.raises(InvalidInputError, match="not available"):
        step_gradients(fresh_tiny, tiny_ids, steps, grad_names=[hook_name("z", 0)], path="single_position")


def test_bad_path_and_hook_names(tiny_model, tiny_ids):
    steps = _steps(tiny_ids, [5])
    with pytest.raises(InvalidInputError, match="Did you mean 'full_graph'"):
        step_gradients(tiny_model, tiny_ids, steps, grad_names=[hook_name("z", 0)], path="full_grpah")
    with pytest.raises(InvalidInputError, match="Unknown hook point"):
        step_gradients(tiny_model, tiny_ids, steps, grad_names=["blocks.7.attn.hook_z"])
    with pytest.raises(InvalidInputError, match="gradient_path='fast' is invalid"):
        make_method("grad_ellm", tiny_model, gradient_path="fast")


@pytest.mark.slow
@pytest.mark.parametrize("layers,n_steps", [(1, 1), (1, 10), ("all", 1), ("all", 10)])
def test_smollm2_fast_path_equals_full_graph(smollm2, layers, n_steps):
    ids = torch.tensor(
        smollm2.tokenizer("The quick brown fox jumps over the lazy dog because it wanted to see").input_ids
    )
    steps = _last_steps(ids, n_steps)
    _same_method_output(smollm2, "grad_ellm", ids, steps, layers=layers)
    _same_method_output(smollm2, "grad_ellm", ids, steps, layers=layers, variant="reference", spatial="pattern")
    _same_method_output(smollm2, "attention_x_gradient", ids, steps, layers=layers)
