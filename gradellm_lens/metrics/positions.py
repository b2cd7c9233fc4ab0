"""Which prefix positions a faithfulness metric may perturb.

A *perturbable* mask is a boolean ``[pos]`` vector over the attributed prefix. Only perturbable
positions are normalised, rescaled and masked; every other position keeps its embedding
(keep probability 1) and is left out of every mean over positions.

Position 0 is **never** perturbable: it is the BOS / first token, the attention sink of Llama-family
models, and zeroing it destroys their outputs (ReAGent also skips BOS for Llama). Two layouts are
provided:

* ``"all prefix"`` (default): every position except 0 (prompt, template and earlier generated
  tokens alike, as in ReAGent);
* ``"span"``: only the positions of a token span, e.g. the user text inside a chat template, with the
  template tokens kept.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InvalidInputError
from ..tensor_types import PositionMask


def all_prefix_mask(length: int) -> PositionMask:
    """Every position of a ``length``-token prefix except position 0 (BOS)."""
    if length < 1:
        raise InvalidInputError(f"A prefix needs at least one token, got length {length}.")
    mask = torch.ones(length, dtype=torch.bool)
    mask[0] = False
    return mask


def span_mask(length: int, start: int, end: int) -> PositionMask:
    """Positions ``start <= i < end`` of a ``length``-token prefix (e.g. the user text), never 0.

    The span is clipped to the prefix, so a span reaching past the current generation step is
    fine; a span that ends up empty raises.
    """
    if not 0 <= start < end:
        raise InvalidInputError(f"The token span [{start}, {end}) is empty or negative; need 0 <= start < end.")
    mask = torch.zeros(length, dtype=torch.bool)
    mask[max(start, 1) : min(end, length)] = True
    if not mask.any():
        raise InvalidInputError(
            f"The token span [{start}, {end}) has no perturbable position inside a prefix of {length} tokens "
            "(position 0, the BOS token, is never perturbed)."
        )
    return mask


def check_perturbable(perturbable: Tensor | None, length: int) -> PositionMask:
    """Validate a caller's mask (or build the default one) for a ``length``-token prefix.

    Raises:
        InvalidInputError: wrong shape or dtype, position 0 marked perturbable, or nothing to perturb.
    """
    if perturbable is None:
        mask = all_prefix_mask(length)
    else:
        mask = torch.as_tensor(perturbable)
        if mask.dtype != torch.bool:
            raise InvalidInputError(f"perturbable must be a boolean mask, got dtype {mask.dtype}.")
        if mask.ndim != 1 or mask.shape[0] != length:
            raise InvalidInputError(
                f"perturbable has shape {tuple(mask.shape)} but the prefix has {length} tokens; "
                "pass one boolean per prefix position (see all_prefix_mask / span_mask)."
            )
        mask = mask.cpu()
        if bool(mask[0]):
            raise InvalidInputError(
                "perturbable[0] is True, but position 0 (BOS) is never perturbed; set it to False "
                "(all_prefix_mask and span_mask do)."
            )
    if not mask.any():
        raise InvalidInputError(
            f"No perturbable position in this {length}-token prefix (position 0, BOS, is always kept): "
            "a faithfulness score needs at least one token that can be masked."
        )
    return mask
