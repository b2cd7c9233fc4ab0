"""Gradient-free forward passes that record activations at TransformerLens hook points.

:func:`record_activations` is the no-grad counterpart of
:func:`~gradellm_lens.capture.capture_gradients` (which always builds an autograd graph): one
``torch.no_grad`` forward with optional extra forward hooks (ablations) registered *before* the
recording hooks, so what is recorded at a hook point is the value after any ablation there.
Activations are keyed by the name that was asked for (the bridge reports canonical names such as
``attn.o.hook_in`` for the alias ``attn.hook_z`` inside hooks) and detached.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..encoding import check_token_ids
from ..errors import InvalidInputError
from ..models.capabilities import model_info
from ..tensor_types import BatchTokenIds, TokenIds
from .hooks import ActivationStore, FwdHook, check_hook_names


def as_batch(model, tokens: TokenIds | BatchTokenIds) -> BatchTokenIds:
    """``[pos]`` or ``[batch, pos]`` token ids -> ``[batch, pos]`` on the model's device.

    Every row is checked like a prompt (ids inside the vocabulary, no longer than the context).
    """
    try:
        tokens = torch.as_tensor(tokens)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidInputError(
            f"tokens must be token ids ([pos] or [batch, pos] integers), got {type(tokens).__name__} "
            f"{str(tokens)[:40]!r}; encode text with gradellm_lens.encode_prompt(model, text)."
        ) from None
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


@torch.no_grad()
def record_activations(
    model, tokens: TokenIds | BatchTokenIds, names: Sequence[str], *, fwd_hooks: Sequence[FwdHook] = ()
) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``model(tokens)`` once; return ``(logits [batch, pos, vocab], {name: activation})``.

    Args:
        model: a ``TransformerBridge``.
        tokens: ``[pos]`` or ``[batch, pos]`` token ids.
        names: hook names to record (e.g. ``hook_name("z", 3)``).
        fwd_hooks: ``(name, fn)`` hooks applied first (e.g. ablation hooks).
    """
    store = ActivationStore(names, detach=True)
    check_hook_names(model, [*store.names, *(name for name, _ in fwd_hooks if isinstance(name, str))])
    with model.hooks(fwd_hooks=[*fwd_hooks, *store.hooks()]):
        logits = model(as_batch(model, tokens))
    store.check_fired()
    return logits, store.values
