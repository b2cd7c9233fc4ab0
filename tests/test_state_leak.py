"""No state leaks: after any sequence of calls -- successful, failing, or interrupted -- the model is
exactly as before: no hooks left, no ``use_attn_result`` change, no parameter gradients, the same
train/eval mode and grad mode, and bit-identical logits."""

from __future__ import annotations

import copy

import pytest
import torch

import gradellm_lens as gl
from gradellm_lens import GradEllm, Step, Target
from gradellm_lens.capture import capture_gradients
from gradellm_lens.errors import LensError
from gradellm_lens.methods.grad_ellm import VARIANTS
from gradellm_lens.models import capabilities

from faults import PROBE_IDS, assert_same, backward_fault, interrupt, nan_at, nan_gradient, raise_in_hook, snapshot


@pytest.fixture
def model(tiny_hf, tiny_tokenizer):
    """A private bridge per test (failures here must not poison the shared fixture)."""
    return gl.load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu")


def _steps(ids, positions):
    return [Step(p, Target(int(ids[p + 1]))) for p in positions]


def _failing_calls(model, ids):
    """(description, callable, expected exception) for failures at every stage of a call."""
    steps = _steps(ids, [4, 8])
    grad_z = ["blocks.1.attn.hook_z"]

    def objective(logits):
        return logits[0, 4, 7]

    return [
        ("bad target id", lambda: GradEllm(model).attribute(ids, [Step(3, Target(10**6))]), LensError),
        ("bad option", lambda: gl.explain(model, "the cat", layers=[9]), LensError),
        ("error in the objective", lambda: capture_gradients(
            model, ids[None], grad_names=grad_z, objective=lambda lg: 1 / 0), ZeroDivisionError),
        ("KeyboardInterrupt in a forward hook", lambda: capture_gradients(
            model, ids[None], grad_names=grad_z, objective=objective,
            fwd_hooks=[("blocks.0.hook_resid_post", raise_in_hook(KeyboardInterrupt()))]), KeyboardInterrupt),
        ("KeyboardInterrupt in the backward", lambda: capture_gradients(
            model, ids[None], grad_names=grad_z, objective=objective,
            fwd_hooks=[("blocks.1.hook_resid_post", backward_fault(interrupt))]), KeyboardInterrupt),
        ("RuntimeError in a forward hook", lambda: capture_gradients(
            model, ids[None], grad_names=grad_z, objective=objective,
            fwd_hooks=[("blocks.1.attn.hook_v", raise_in_hook(RuntimeError("injected")))]), RuntimeError),
        ("NaN in the forward", lambda: capture_gradients(
            model, ids[None], grad_names=grad_z, objective=objective,
            fwd_hooks=[("blocks.0.hook_resid_post", nan_at())]), LensError),
        ("NaN in the backward", lambda: capture_gradients(
            model, ids[None], grad_names=grad_z, objective=objective,
            fwd_hooks=[("blocks.1.hook_resid_post", nan_gradient)]), LensError),
        ("hook point that never fires", lambda: capture_gradients(
            model, ids[None], grad_names=["blocks.7.attn.hook_z"], objective=objective), LensError),
        ("interrupt during explain's generation", lambda: _explain_with_outer_hook(
            model, raise_in_hook(KeyboardInterrupt())), KeyboardInterrupt),
        ("NaN during explain", lambda: _explain_with_outer_hook(
            model, nan_at()), LensError),
        ("interrupt in Grad-ELLM's forward", lambda: _grad_ellm_interrupted(model, ids, steps), KeyboardInterrupt),
        ("interrupt in Grad-ELLM's backward", lambda: _grad_ellm_interrupted(
            model, ids, steps, "backward"), KeyboardInterrupt),
    ]  # fmt: skip


def _explain_with_outer_hook(model, hook):
    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", hook)]):
        gl.explain(model, "the cat sat", max_new_tokens=2)


def _grad_ellm_interrupted(model, ids, steps, where="forward"):
    """Ctrl-C inside Grad-ELLM's own forward (a hook) or backward (an autograd node)."""
    if where == "forward":
        hook = ("blocks.1.hook_resid_mid", raise_in_hook(KeyboardInterrupt()))
    else:
        hook = ("blocks.1.hook_resid_post", backward_fault(interrupt))
    with model.hooks(fwd_hooks=[hook]):
        GradEllm(model, layers="all").attribute(ids, steps)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_grad_ellm_variants_leave_no_state(model, tiny_ids, variant):
    before = snapshot(model)
    for share_forward in (True, False):
        GradEllm(model, variant=variant, layers="all", share_forward=share_forward).attribute(
            tiny_ids, _steps(tiny_ids, [3, 7, 10])
        )
    assert_same(before, snapshot(model))


def test_explain_leaves_no_state(model):
    before = snapshot(model)
    gl.explain(model, "the cat sat", max_new_tokens=3, layers="all")
    gl.explain(model, ["the cat", "a dog sat on the mat"], target="yes", contrast="no", objective="log_prob")
    gl.explain(model, "the cat", continuation="sat on the mat", variant="reference")
    with torch.no_grad():
        gl.explain(model, "the cat", max_new_tokens=2)
    assert_same(before, snapshot(model))


def test_failing_and_interrupted_calls_leave_no_state(model, tiny_ids):
    before = snapshot(model)
    calls = _failing_calls(model, tiny_ids)
    for _ in range(2):  # repeated failures must not accumulate anything either
        for description, call, expected in calls:
            with pytest.raises(expected):
                call()
            assert_same(before, snapshot(model), f"after: {description}")
    GradEllm(model, layers="all").attribute(tiny_ids, _steps(tiny_ids, [5]))  # still works afterwards
    assert_same(before, snapshot(model))


def test_failures_do_not_change_results(model, tiny_ids):
    steps = _steps(tiny_ids, [4, 9])
    expected = GradEllm(model, layers="all").attribute(tiny_ids, steps)
    for _, call, exc in _failing_calls(model, tiny_ids):
        with pytest.raises(exc):
            call()
    again = GradEllm(model, layers="all").attribute(tiny_ids, steps)
    assert torch.equal(expected.scores.nan_to_num(-1), again.scores.nan_to_num(-1))
    assert torch.equal(expected.layer_head.nan_to_num(-1), again.layer_head.nan_to_num(-1))


def test_train_mode_and_user_hooks_are_preserved(model, tiny_ids):
    """Calls neither switch the model to eval nor remove hooks the user registered themselves."""
    fired = []
    model.add_hook("blocks.0.hook_resid_post", lambda t, hook: fired.append(1) or t)
    model.train()
    before = snapshot(model)
    gl.explain(model, "the cat sat", max_new_tokens=2)
    with pytest.raises(KeyboardInterrupt):
        _grad_ellm_interrupted(model, tiny_ids, _steps(tiny_ids, [4]))
    assert_same(before, snapshot(model))
    assert model.training
    fired.clear()
    with torch.no_grad():
        model(PROBE_IDS)
    assert fired == [1]
    model.reset_hooks()


def test_probe_on_a_fresh_bridge_leaves_no_state(model):
    capabilities._INFO.pop(model, None)  # forget the cached probe so that it runs again
    before = snapshot(model)
    info = gl.model_info(model)
    assert info.gradients_supported
    assert_same(before, snapshot(model))
    for param in model.parameters():  # pre-existing user gradients survive the probe untouched
        param.grad = torch.full_like(param, 0.5)
    capabilities._INFO.pop(model, None)
    gl.model_info(model)
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
