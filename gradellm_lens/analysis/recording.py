"""Gradient-free forward passes that record activations at TransformerLens hook points.

Also the input normalisation the analysis functions share (:func:`as_batch`, :func:`as_steps`).

:func:`record_activations` is the analysis counterpart of
:func:`gradellm_lens.capture.capture_gradients` (which always builds an autograd graph): one
``torch.no_grad`` forward with optional extra forward hooks (ablations) registered *before* the
recording hooks, so what is recorded at a hook point is the value after any ablation there.
Activations are keyed by the name that was asked for (the bridge reports canonical names such as
``attn.o.hook_in`` for the alias ``attn.hook_z`` inside hooks) and detached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..capture.gradients import _check_hook_names
from ..errors import InvalidInputError
from ..encoding import check_token_ids
from ..models.capabilities import model_info
from ..targets import Step, Target
from ..typing import BatchTokenIds, TokenIds

FwdHook = tuple[str, Callable]

HOOK_TEMPLATES = {
    "z": "blocks.{layer}.attn.hook_z",
    "k": "blocks.{layer}.attn.hook_k",
    "v": "blocks.{layer}.attn.hook_v",
    "attn_out": "blocks.{layer}.hook_attn_out",
}


def hook_name(kind: str, layer: int) -> str:
    """TransformerLens name of an attention hook point: ``z``, ``k``, ``v`` or ``attn_out``."""
    return HOOK_TEMPLATES[kind].format(layer=layer)


def as_batch(model, tokens: TokenIds | BatchTokenIds) -> BatchTokenIds:
    """``[pos]`` or ``[batch, pos]`` token ids -> ``[batch, pos]`` on the model's device.

    Every row is checked like a prompt (ids inside the vocabulary, no longer than the context).
    """
    tokens = torch.as_tensor(tokens)
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.numel() == 0 or tokens.dtype.is_floating_point:
        raise InvalidInputError(
            f"tokens must be non-empty integer ids of shape [pos] or [batch, pos], got {tuple(tokens.shape)}."
        )
    info = model_info(model)
    for row in tokens.unique(dim=0):
        check_token_ids(row, info, "the token sequence")
    return tokens.to(next(model.parameters()).device)


def as_steps(tokens: TokenIds, target: Target | Sequence[Step]) -> list[Step]:
    """A :class:`Target` becomes one step at the last position; steps are checked against ``tokens``."""
    steps = [Step(int(tokens.shape[-1]) - 1, target)] if isinstance(target, Target) else list(target)
    if not steps or not all(isinstance(s, Step) for s in steps):
        raise InvalidInputError("target must be a Target or a non-empty sequence of Step objects.")
    bad = [s.position for s in steps if not 0 <= s.position < tokens.shape[-1]]
    if bad:
        raise InvalidInputError(f"Step position {bad[0]} is outside the sequence (length {tokens.shape[-1]}).")
    return steps


@torch.no_grad()
def record_activations(
    model, tokens: TokenIds | BatchTokenIds, names: Sequence[str], *, fwd_hooks: Sequence[FwdHook] = ()
) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``model(tokens)`` once; return ``(logits [batch, pos, vocab], {name: activation})``.

    Args:
        model: a ``TransformerBridge``.
        tokens: ``[pos]`` or ``[batch, pos]`` token ids.
        names: hook names to record (e.g. ``hook_name("z", 3)``).
        fwd_hooks: ``(name, fn)`` hooks applied first (e.g. :func:`~.ablation.ablation_hooks`).
    """
    store: dict[str, Tensor] = {}

    def recorder(name: str) -> Callable:
        def hook(tensor: Tensor, hook=None) -> Tensor:
            store[name] = tensor.detach().clone()
            return tensor

        return hook

    names = list(dict.fromkeys(names))
    _check_hook_names(model, [*names, *(name for name, _ in fwd_hooks if isinstance(name, str))])
    with model.hooks(fwd_hooks=[*fwd_hooks, *[(n, recorder(n)) for n in names]]):
        logits = model(as_batch(model, tokens))
    missing = [n for n in names if n not in store]
    if missing:
        raise InvalidInputError(f"Hook point(s) never fired during the forward pass: {missing}.")
    return logits, store
