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
the clean score comes from one extra forward. No gradients are taken. For the same reason the
positions before a batch's first occluded one are clean in every copy of the batch: with
``share_head=True`` (default, where the model supports frozen prefixes) their keys and values are
taken from one clean forward and each batch runs only the positions from its first occluded one
on (:func:`~gradellm_lens.capture.frozen_prefix.tail_logits`), about half the work for batches much
shorter than the prefix. A step before that position keeps its clean value (drop exactly 0, which
causality gives the full forward too). Same scores up to float rounding; ``share_head=False`` runs
whole copies.

Position 0: with ``first_position="occlude"`` (default) it is occluded like any other token. On
models that prepend a BOS token this usually gives BOS a large score (zeroing the attention sink
disturbs every later position); ``first_position="skip"`` leaves it unperturbed with score 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from ..capture.frozen_prefix import FrozenKeysValues, prefix_cache_supported, record_keys_values
from ..errors import InvalidInputError
from ..targets import Step, as_index
from ..tensor_types import StepScores, TokenIds
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
        share_head: run each batch over the clean keys/values of the positions before its first
            occluded one (default True; a speed option, the scores are the same).
    """

    replacement: Replacement = "zero"
    batch_size: int = 16
    first_position: FirstPosition = "occlude"
    share_head: bool = True

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
        if not isinstance(self.share_head, bool):
            raise InvalidInputError(f"share_head must be true or false, got {self.share_head!r}.")


class Occlusion(AttributionMethod):
    """Occlusion / leave-one-out: score drop when one token's embedding is zeroed (or replaced)."""

    method_name: ClassVar[str] = "occlusion"
    signed: ClassVar[bool] = True
    Options: ClassVar[type] = OcclusionOptions
    throughput_options: ClassVar[frozenset[str]] = frozenset({"batch_size", "share_head"})

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
    def _drops(
        self, tokens: TokenIds, steps: Sequence[Step], clean: Tensor, positions: Tensor, frozen: FrozenKeysValues | None
    ) -> Float[Tensor, "step row"]:
        """``y_t(x) - y_t(x^{(i)})`` for each ``i`` of ``positions`` (ascending): ``[step, len(positions)]``.

        With ``frozen`` (the clean prefix's keys/values) and a first position ``a > 0``, the copies
        run ``tokens[a:]`` over the keys/values of ``tokens[:a]``; steps before ``a`` are not run
        (their drop is exactly 0 by causality). The last step is always run: ``tokens`` end at its
        position.
        """
        start = int(positions[0]) if frozen is not None else 0
        head = frozen.head(start) if start > 0 else None
        live = [t for t, s in enumerate(steps) if s.position >= start]
        batch = tokens[None, start:].repeat(len(positions), 1)
        rows = torch.arange(len(positions), device=tokens.device)
        columns = positions - start
        hooks = []
        if self.replacement_id is None:

            def occlude(embed: Tensor, hook=None) -> Tensor:
                embed = embed.clone()
                embed[rows, columns] = 0.0
                return embed

            hooks.append((EMBED_HOOK, occlude))
        else:
            batch[rows, columns] = self.replacement_id
        drops = torch.zeros(len(steps), len(positions))
        occluded = step_values(self.model, batch, [steps[t] for t in live], hooks, frozen=head).cpu()
        drops[live] = clean[live, None] - occluded.T
        return drops

    def _clean_keys_values(self, tokens: TokenIds) -> FrozenKeysValues | None:
        """The keys/values of the clean prefix at every layer, where batches may run over them."""
        if not self.options.share_head or not prefix_cache_supported(self.model):
            return None
        frozen, _ = record_keys_values(self.model, tokens[None], range(self.info.n_layers))
        return frozen

    def _attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        tokens = shared_prefix(tokens, steps)
        clean = step_values(self.model, tokens[None], steps)[0].cpu()  # [step]
        frozen = self._clean_keys_values(tokens)
        first = 1 if self.options.first_position == "skip" else 0
        occluded = torch.arange(first, tokens.shape[0], device=tokens.device)
        drops: StepScores = torch.zeros(len(steps), tokens.shape[0])
        for part in chunks(len(occluded), self.options.batch_size, "occlusion batches"):
            drops[:, occluded[part].cpu()] = self._drops(tokens, steps, clean, occluded[part], frozen)
        return MethodOutput(scores=drops, diagnostics={"shared_head": frozen is not None})
