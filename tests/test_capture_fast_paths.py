"""The performance paths of the capture give the same numbers as the plain ones.

``logit_positions`` (unembedding only where the objective reads), ``stacked_values`` (one gather per
objective kind instead of one selection per step) and the vectorised backward (``vmap``) against
the loop of single backwards.
"""

from __future__ import annotations

import pytest
import torch

from gradellm_lens.capture import capture_gradients
from gradellm_lens.targets import Target, stacked_values

HOOKS = ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z"]
TARGETS = [
    Target(5),
    Target(7, contrast_id=9),
    Target(11, objective="log_prob"),
    Target(13, contrast_id=4, objective="prob"),
    Target(6, objective="log_prob"),
]


def test_stacked_values_equal_per_target_calls():
    logits = torch.randn(3, len(TARGETS), 20, requires_grad=True)
    stacked = stacked_values(TARGETS, logits)
    looped = torch.stack([t(logits[:, i]) for i, t in enumerate(TARGETS)], dim=-1)
    torch.testing.assert_close(stacked, looped)
    grad_outputs = torch.randn_like(stacked)
    (a,) = torch.autograd.grad(stacked, logits, grad_outputs)
    (b,) = torch.autograd.grad(looped, logits, grad_outputs)
    torch.testing.assert_close(a, b)


def test_logit_positions_and_backward_paths_agree(tiny_model, tiny_ids):
    positions = [3, 7, 7, len(tiny_ids) - 1]  # a repeated position is allowed
    targets = TARGETS[: len(positions)]

    def capture(**kwargs):
        sliced = "logit_positions" in kwargs
        return capture_gradients(
            tiny_model,
            tiny_ids[None],
            grad_names=HOOKS,
            objective=lambda lg: stacked_values(targets, lg[0] if sliced else lg[0, positions]),
            **kwargs,
        )

    full = capture(vectorize=False)
    fast = capture(logit_positions=positions)
    assert (full.backward, fast.backward) == ("loop", "vmap")
    assert fast.logits.shape == (1, len(positions), full.logits.shape[-1])
    torch.testing.assert_close(fast.logits[0], full.logits[0, positions], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.objective, full.objective, atol=1e-5, rtol=1e-5)
    for name in HOOKS:
        assert fast.gradients[name].shape == (len(positions), *full.activations[name].shape)
        torch.testing.assert_close(fast.gradients[name], full.gradients[name], atol=1e-6, rtol=1e-5)


def test_single_objective_paths(tiny_model, tiny_ids):
    scalar = capture_gradients(tiny_model, tiny_ids[None], grad_names=HOOKS, objective=lambda lg: lg[0, 4, 5])
    one = capture_gradients(
        tiny_model, tiny_ids[None], grad_names=HOOKS, objective=lambda lg: lg[0, :, 5], logit_positions=[4]
    )
    assert (scalar.backward, one.backward) == ("single", "single")
    for name in HOOKS:
        torch.testing.assert_close(one.gradients[name][0], scalar.gradients[name], atol=1e-6, rtol=1e-5)


def _fail_batched_backward(monkeypatch, error):
    """Make the vectorised backward (and only it) raise ``error``."""
    from gradellm_lens.capture import gradients

    real = torch.autograd.grad

    def grad(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(gradients.torch.autograd, "grad", grad)


def _capture_two_objectives(model, ids):
    return capture_gradients(model, ids[None], grad_names=HOOKS, objective=lambda lg: lg[0, [3, 6], 5], logit_positions=None)


def test_a_batching_failure_falls_back_to_the_loop(tiny_model, tiny_ids, monkeypatch):
    expected = _capture_two_objectives(tiny_model, tiny_ids)
    _fail_batched_backward(monkeypatch, RuntimeError("Batching rule not implemented for aten::_some_op (vmap)"))
    got = _capture_two_objectives(tiny_model, tiny_ids)
    assert (expected.backward, got.backward) == ("vmap", "loop")
    for name in HOOKS:
        torch.testing.assert_close(got.gradients[name], expected.gradients[name], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "error",
    [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), RuntimeError("DefaultCPUAllocator: can't allocate memory")],
)
def test_out_of_memory_surfaces_with_advice_and_is_not_retried(tiny_model, tiny_ids, monkeypatch, error):
    _fail_batched_backward(monkeypatch, error)
    with pytest.raises(torch.OutOfMemoryError, match="share_forward=False") as info:
        _capture_two_objectives(tiny_model, tiny_ids)
    assert info.value.__cause__ is error


def test_out_of_memory_in_the_forward_gets_the_advice_too(tiny_model, tiny_ids):
    from gradellm_lens.methods import make_method
    from gradellm_lens.targets import Step

    def oom(x, hook=None):
        raise torch.OutOfMemoryError("CUDA out of memory")

    steps = [Step(5, Target(3))]
    for path in ("auto", "full_graph"):
        with tiny_model.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", oom)]), pytest.raises(torch.OutOfMemoryError, match="fewer steps"):
            make_method("grad_ellm", tiny_model, gradient_path=path).attribute(tiny_ids, steps)
