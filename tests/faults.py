"""Fault injection for reliability tests: TransformerLens forward hooks that poison the forward
pass, the backward pass, or raise, at chosen hook points and positions; and :func:`snapshot` /
:func:`assert_same`, which compare everything a call could leave behind on a model."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor

from gradellm_lens.capture import hook_count

PROBE_IDS = torch.tensor([[1, 4, 32, 34, 14, 4, 35, 41, 23]])


class _BackwardFault(torch.autograd.Function):
    """Identity in the forward pass; ``fn(grad)`` replaces the incoming gradient in the backward."""

    @staticmethod
    def forward(ctx, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.fn = fn
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        return ctx.fn(grad), None


def backward_fault(fn: Callable[[Tensor], Tensor], positions=slice(None)) -> Callable:
    """A forward hook whose backward applies ``fn`` to the gradient at ``positions`` only."""

    def hook(tensor: Tensor, hook=None) -> Tensor:
        out = tensor.clone()
        out[:, positions] = _BackwardFault.apply(tensor[:, positions], fn)
        return out

    return hook


def nan_where_used(grad: Tensor) -> Tensor:
    """Every non-zero gradient becomes NaN (so objectives that do not read the spot stay finite)."""
    return torch.where(grad != 0, torch.full_like(grad, float("nan")), grad)


def interrupt(grad: Tensor) -> Tensor:
    """Ctrl-C in the middle of the backward pass (or, via :func:`on_call`, of a forward pass)."""
    raise KeyboardInterrupt


def on_call(n: int, fn: Callable[[Tensor], Tensor]) -> Callable:
    """A forward hook that applies ``fn`` on its ``n``-th call only (1-based) and passes the others:
    a fault in one batch of a batched method, or one generation step."""
    calls = itertools.count(1)

    def hook(tensor: Tensor, hook=None) -> Tensor:
        return fn(tensor) if next(calls) == n else tensor

    return hook


def nan_at(positions=slice(None)) -> Callable:
    """A forward hook that writes NaN at ``positions``."""

    def hook(tensor: Tensor, hook=None) -> Tensor:
        tensor = tensor.clone()
        tensor[:, positions] = float("nan")
        return tensor

    return hook


def nan_gradient(tensor: Tensor, hook=None) -> Tensor:
    """Forward unchanged (``sqrt(0) = 0``); backward NaN (``d sqrt/du`` at 0 is inf, times 0)."""
    return tensor + (tensor * 0).sqrt()


def raise_in_hook(exc: BaseException) -> Callable:
    """A forward hook that raises ``exc``."""

    def hook(tensor: Tensor, hook=None) -> Tensor:
        raise exc

    return hook


def snapshot(model) -> dict:
    """Everything a call could leave behind, in comparable form."""
    hook_points = [m for m in model.modules() if hasattr(m, "fwd_hooks") and hasattr(m, "ctx")]
    with torch.no_grad():
        logits = model(PROBE_IDS).clone()
    return {
        "hooks": hook_count(model),
        "hook_point_lists": sum(len(h.fwd_hooks) + len(h.bwd_hooks) + len(h.ctx) for h in hook_points),
        "use_attn_result": (
            getattr(model.cfg, "use_attn_result", None),
            tuple(getattr(m, "use_attn_result", None) for m in model.modules()),
        ),
        "param_grads": [name for name, p in model.named_parameters() if p.grad is not None],
        "requires_grad": tuple(p.requires_grad for p in model.parameters()),
        "training": tuple(m.training for m in model.modules()),
        "grad_enabled": torch.is_grad_enabled(),
        "logits": logits,
    }


def assert_same(before: dict, after: dict, context: str = "") -> None:
    """Assert that two :func:`snapshot` results agree (logits bit-identical)."""
    for key, value in before.items():
        if key == "logits":
            assert torch.equal(value, after[key]), f"logits changed {context}"
        else:
            assert value == after[key], f"{key} changed {context}"
