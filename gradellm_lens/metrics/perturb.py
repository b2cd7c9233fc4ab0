"""Batched, seeded Bernoulli masking of input embeddings (the perturbation of Soft-NC/NS).

A perturbation of a prefix is a keep-probability vector ``r`` (``[pos]``). Its input is
``x' = x ⊙ m`` with ``m_{i,d} = 1[U_{i,d} < r_i]``: an independent Bernoulli(``r_i``) draw for every
element ``d`` of token ``i``'s input embedding, the output of ``hook_embed`` (Llama-family models add
no positional embedding there; on GPT-2 ``hook_pos_embed`` is left untouched, as in ReAGent).

Common random numbers: the uniforms ``U`` (``[draw, pos, d_model]``) are drawn once per step from
a CPU ``torch.Generator`` seeded by :func:`step_seed` (the configured seed and a stable hash of the
prefix and target), and every perturbation of draw ``k`` thresholds the same ``U_k``. So the masks
do not depend on the scores being evaluated (all methods see the same noise), are nested across π
for a fixed draw, do not depend on the batch size, and are identical on CPU and GPU.

All perturbations of a step run in as few forwards as ``batch_size`` allows: the prefix is repeated
``batch`` times and ``hook_embed``'s ``[batch, pos, d_model]`` output is multiplied by the stacked
masks; the logits are cut to the last position before the unembedding (the masks are built on the
model's device, one batch at a time).

Shared head: the positions before the first perturbable one are never masked, so they are the same
in every perturbed copy of a step, and so are their keys and values at every layer (the model is
causal). Within :func:`unperturbed_head` a :class:`BridgeMaskedForward` computes them once
(:func:`~gradellm_lens.capture.frozen_prefix.record_keys_values`) and runs only the remaining
positions of each batch over them (:func:`~gradellm_lens.capture.frozen_prefix.tail_forward`);
with user-text perturbation of a chat prompt the head is the whole system prompt and instruction.
The logits are those of the full forward up to float rounding; models or settings where frozen
prefixes are not exact run whole prefixes.

The model side is one small protocol, :class:`MaskedForward`, so metrics can run on any model that
can multiply its input embeddings by a mask (tests use synthetic models with known answers);
:func:`as_masked_forward` adapts a TransformerLens model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..capture.frozen_prefix import FrozenKeysValues, prefix_cache_supported, record_keys_values, tail_forward
from ..capture.hooks import hook_name, logit_rows_hook
from ..errors import InvalidInputError
from ..models.capabilities import model_info
from ..seeding import stable_seed
from ..tensor_types import TokenIds

Uniforms = Float[Tensor, "draw pos d_model"]
KeepMatrix = Float[Tensor, "item pos"]


@runtime_checkable
class MaskedForward(Protocol):
    """A model that runs one prefix under a batch of input-embedding masks (boolean, 1 = keep).

    Attributes:
        d_model: width of the input embeddings (the mask's last dimension).

    An optional ``d_vocab`` attribute lets callers validate token ids before running, and an
    optional ``device`` attribute says where the masks should be built.
    """

    d_model: int

    def __call__(self, tokens: TokenIds, masks: Bool[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch vocab"]:
        """Logits at the last position of ``tokens`` with its input embeddings multiplied by each mask."""
        ...


class BridgeMaskedForward:
    """:class:`MaskedForward` for a TransformerLens model: multiplies ``hook_embed``'s output.

    ``share_head=False`` always runs whole prefixes (the unperturbed head included); pass such an
    instance as the model of :func:`~.evaluate.evaluate_step` to time or check that path.
    """

    def __init__(self, model, *, share_head: bool = True) -> None:
        info = model_info(model)
        self.share_head = share_head
        self.model = model
        self.d_model = info.d_model
        self.d_vocab = info.d_vocab
        self.n_ctx = info.n_ctx
        self.device = next(model.parameters()).device
        self._head: tuple[TokenIds, FrozenKeysValues] | None = None

    @contextlib.contextmanager
    def frozen_head(self, tokens: TokenIds, length: int) -> Iterator[None]:
        """Within the block, calls for ``tokens`` whose masks keep the first ``length`` positions run
        only the later positions, over the head's keys/values computed here once."""
        if not self.share_head or not 1 <= length < tokens.shape[0] or not prefix_cache_supported(self.model):
            yield
            return
        frozen, _ = record_keys_values(
            self.model, tokens[None, :length].to(self.device), range(self.model.cfg.n_layers)
        )
        self._head = (tokens, frozen)
        try:
            yield
        finally:
            self._head = None

    @torch.no_grad()
    def __call__(self, tokens: TokenIds, masks: Bool[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch vocab"]:
        head = self._head
        if head is not None and torch.equal(head[0], tokens) and bool(masks[:, : head[1].length].all()):
            h = head[1].length
            tail = tokens[h:].to(self.device)[None].expand(masks.shape[0], -1)
            return tail_forward(self.model, tail, head[1], fwd_hooks=[self._masking(masks[:, h:])]).float()
        cut, _ = logit_rows_hook(self.model, [-1])  # unembed only the last position
        batch_tokens = tokens.to(self.device)[None].expand(masks.shape[0], -1)
        with self.model.hooks(fwd_hooks=[self._masking(masks), *cut]):
            logits = self.model(batch_tokens)
        return logits[:, -1].float()

    @staticmethod
    def _masking(masks: Tensor) -> tuple[str, object]:
        def apply_mask(embed: Tensor, hook=None) -> Tensor:
            return embed * masks.to(device=embed.device, dtype=embed.dtype)

        return hook_name("embed"), apply_mask


def unperturbed_head(forward: MaskedForward, tokens: TokenIds, length: int):
    """Context in which ``forward`` may reuse the keys/values of ``tokens[:length]`` (never masked) across
    calls: :meth:`BridgeMaskedForward.frozen_head`, or nothing for other forwards."""
    head = getattr(forward, "frozen_head", None)
    return head(tokens, length) if head is not None else contextlib.nullcontext()


def as_masked_forward(model) -> MaskedForward:
    """Adapt ``model``: a TransformerLens model (anything with ``hooks`` and a ``hook_embed`` point)
    or an object that already implements :class:`MaskedForward`."""
    if hasattr(model, "hooks") and hook_name("embed") in getattr(model, "hook_dict", {}):
        return BridgeMaskedForward(model)
    if isinstance(model, MaskedForward):
        return model
    raise InvalidInputError(
        f"Cannot perturb the input embeddings of a {type(model).__name__}: pass a TransformerLens model "
        "(gradellm_lens.load_model) or an object with a d_model attribute and __call__(tokens, masks) -> logits."
    )


def step_seed(seed: int, tokens: TokenIds, token_id: int) -> int:
    """A stable 63-bit seed from ``seed``, the prefix token ids and the explained token id."""
    return stable_seed(seed, tokens, token_id)


def draw_uniforms(seed: int, n_draws: int, length: int, d_model: int) -> Uniforms:
    """``[n_draws, length, d_model]`` float32 uniforms in ``[0, 1)`` from a CPU generator seeded with ``seed``."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.rand((n_draws, length, d_model), generator=generator, dtype=torch.float32)


def iter_masked_logits(
    forward: MaskedForward,
    tokens: TokenIds,
    keep: KeepMatrix,
    draws: Int[Tensor, "item"],
    uniforms: Uniforms,
    batch_size: int,
) -> Iterator[tuple[int, Float[Tensor, "batch vocab"]]]:
    """Run every perturbation ``(keep[k], uniforms[draws[k]])`` in batches of ``batch_size``.

    Yields ``(start, logits)`` with ``logits[j]`` the last-position logits of item ``start + j``.
    Masks are boolean ``[batch, pos, d_model]`` tensors built on the uniforms' device one batch at a
    time, so memory grows with the batch, not with the number of items.
    """
    if keep.shape[0] != draws.shape[0]:
        raise InvalidInputError(f"{keep.shape[0]} keep vectors but {draws.shape[0]} draw indices.")
    threshold = keep.to(device=uniforms.device, dtype=torch.float32)
    draws = draws.to(uniforms.device)
    for start in range(0, keep.shape[0], batch_size):
        stop = min(start + batch_size, keep.shape[0])
        masks = uniforms[draws[start:stop]] < threshold[start:stop, :, None]
        yield start, forward(tokens, masks)
