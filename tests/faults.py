"""Fault injection for reliability tests: TransformerLens forward hooks that poison the forward
pass, the backward pass, or raise, at chosen hook points and positions."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


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
    """Ctrl-C in the middle of the backward pass."""
    raise KeyboardInterrupt


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
