r"""Occlusion (leave-one-out): how much the explained score drops when one token is removed.

For the step explaining position :math:`p` and every prefix position :math:`i \le p`,

.. math::

    s_i = y(x) - y(x^{(i)}),

where :math:`x^{(i)}` is the input with token :math:`i` occluded: its embedding (the output of
``hook_embed``) replaced by the zero vector (``replacement="zero"``, default), or the token itself
replaced by the tokenizer's pad or unk token, or by a given token id (``replacement=<id>``).
Signed: positive means the token supports the target (the base ``sign`` option keeps the positive
part by default).

Computation: occluding position :math:`i` changes the logits at positions :math:`\ge i` only,
so one forward per occluded position over the longest prefix serves every step. The :math:`L`
occluded copies (one per position of the longest prefix) run in batches of ``batch_size`` rows;
the clean score comes from one extra forward. No gradients are taken.

Position 0: with ``first_position="occlude"`` (default) it is occluded like any other token. On
models that prepend a BOS token this usually gives BOS a large score (zeroing the attention sink
disturbs every later position); ``first_position="skip"`` leaves it unperturbed with score 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from ..errors import InvalidInputError
from ..targets import Step, as_index
from ..typing import StepScores, TokenIds
from .base import AttributionMethod, MethodOutput
from .batching import chunks
from .gradients import EMBED_HOOK
from .objectives import shared_prefix, step_values

Replacement = Literal["zero", "pad", "unk"] | int
FirstPosition = Literal["occlude", "skip"]


@dataclass(frozen=True)
class OcclusionOptions:
    """Options of :class:`Occlusion`.

    Attributes:
        replacement: ``"zero"`` (zero embedding, default), ``"pad"`` / ``"unk"`` (the tokenizer's
            pad / unk token) or a token id.
        batch_size: occluded copies per forward pass (default 16).
        first_position: ``"occlude"`` (default) or ``"skip"`` (position 0 keeps score 0).
    """

    replacement: Replacement = "zero"
    batch_size: int = 16
    first_position: FirstPosition = "occlude"

    def __post_init__(self) -> None:
        if not (isinstance(self.replacement, str) and self.replacement in ("zero", "pad", "unk")):
            if isinstance(self.replacement, str):
                raise InvalidInputError(
                    f"replacement={self.replacement!r} is invalid; use 'zero', 'pad', 'unk' or a token id."
                )
            object.__setattr__(self, "replacement", as_index(self.replacement, "replacement token id"))
        object.__setattr__(self, "batch_size", as_index(self.batch_size, "batch_size", minimum=1))
        if self.first_position not in ("occlude", "skip"):
            raise InvalidInputError(f"first_position={self.first_position!r} is invalid; use 'occlude' or 'skip'.")


class Occlusion(AttributionMethod):
    """Occlusion / leave-one-out: score drop when one token's embedding is zeroed (or replaced)."""

    method_name: ClassVar[str] = "occlusion"
    signed: ClassVar[bool] = True
    Options: ClassVar[type] = OcclusionOptions

    def __init__(self, model, **options) -> None:
        super().__init__(model, **options)
        self.replacement_id = self._replacement_id()

    def _replacement_id(self) -> int | None:
        rep = self.options.replacement
        if rep == "zero":
            return None
        if isinstance(rep, int):
            token_id = rep
        else:
            token_id = getattr(self.model.tokenizer, f"{rep}_token_id", None)
            if token_id is None:
                raise InvalidInputError(
                    f"occlusion replacement={rep!r}: this tokenizer has no {rep} token; use 'zero' or a token id."
                )
        if not 0 <= token_id < self.info.d_vocab:
            raise InvalidInputError(
                f"occlusion replacement token id {token_id} is outside the vocabulary (0..{self.info.d_vocab - 1})."
            )
        return int(token_id)

    @torch.no_grad()
    def _scores(self, tokens: TokenIds, steps: Sequence[Step], positions: Tensor) -> Tensor:
        """``y_t`` with each of ``positions`` occluded in turn: ``[len(positions), step]``."""
        batch = tokens[None].repeat(len(positions), 1)
        rows = torch.arange(len(positions), device=tokens.device)
        hooks = []
        if self.replacement_id is None:

            def occlude(embed: Tensor, hook=None) -> Tensor:
                embed = embed.clone()
                embed[rows, positions] = 0.0
                return embed

            hooks.append((EMBED_HOOK, occlude))
        else:
            batch[rows, positions] = self.replacement_id
        return step_values(self.model, batch, steps, hooks)

    def _attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        tokens = shared_prefix(tokens, steps)
        clean = step_values(self.model, tokens[None], steps)[0]  # [step]
        first = 1 if self.options.first_position == "skip" else 0
        occluded = torch.arange(first, tokens.shape[0], device=tokens.device)
        drops: StepScores = torch.zeros(len(steps), tokens.shape[0])
        for part in chunks(len(occluded), self.options.batch_size, "occlusion batches"):
            drops[:, occluded[part].cpu()] = (clean[None, :] - self._scores(tokens, steps, occluded[part])).T.cpu()
        return MethodOutput(scores=drops)
