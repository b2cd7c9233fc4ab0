"""The performance paths of the capture give the same numbers as the plain ones.

``logit_positions`` (unembedding only where the objective reads), ``stacked_values`` (one gather per
objective kind instead of one selection per step) and the vectorised backward (``vmap``) against
the loop of single backwards.
"""

from __future__ import annotations

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
