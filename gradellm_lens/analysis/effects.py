r"""Measured effect of an ablation: target score, target probability, choice, generation.

For token ids ``tokens`` and explained steps :math:`t = 1..T` (a :class:`~gradellm_lens.targets.Target`
at the last position is one step), with :math:`y_t` the step's target scalar (logit by default, or
log-prob, prob, or a contrast; see :class:`~gradellm_lens.targets.Target`) and :math:`p_t` the
softmax probability of the step's target token:

.. math::

    \text{score} = \tfrac{1}{T} \textstyle\sum_t y_t, \qquad
    \text{prob} = \tfrac{1}{T} \textstyle\sum_t p_t, \qquad
    \text{drop} = \text{clean} - \text{ablated}

so a positive ``score_drop`` means the ablation removed evidence for the targets. With
``choices`` (one token id, or a group of ids, per label: e.g. ``task.label_candidates(tokenizer)``
for `` negative`` / `` positive``) the effect also records the index of the winning choice (the
highest logit in its group) at the last step, clean and ablated: task accuracy under an ablation
is the fraction of examples whose ablated choice is the gold label index.

:func:`ablation_effects` evaluates many ablations of one sequence with one clean forward and
batched ablated forwards (one ablation per batch row, :func:`~.ablation.row_ablation_hooks`);
:func:`single_head_effects` uses it to measure the drop from removing each head individually.
:func:`ablated_continuation` generates greedily under an ablation and
:func:`continuation_agreement` compares two continuations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..attribute import greedy_continuation, single_token
from ..capture import logit_rows_hook
from ..capture.recording import as_batch
from ..encoding import encode_prompt
from ..errors import InvalidInputError, NumericalError
from ..models.capabilities import model_info
from ..progress import progress_bar
from ..targets import Step, Target, as_index, as_steps
from ..tensor_types import TokenIds
from .ablation import Ablation, AblationMode, AblationReference, ablated, row_ablation_hooks
from .importance import HeadImportance


@dataclass(frozen=True)
class AblationEffect:
    """Clean vs ablated values of the explained scalar (mean over steps) on one sequence.

    Attributes:
        clean_score: mean target scalar (e.g. logit) without the ablation.
        ablated_score: the same with the ablation.
        clean_prob: mean softmax probability of the target tokens without the ablation.
        ablated_prob: the same with the ablation.
        clean_choice: index of the winning ``choices`` entry at the last step without the ablation, or None.
        ablated_choice: the same with the ablation.
    """

    clean_score: float
    ablated_score: float
    clean_prob: float
    ablated_prob: float
    clean_choice: int | None = None
    ablated_choice: int | None = None

    @property
    def score_drop(self) -> float:
        """``clean_score - ablated_score`` (positive: the ablation lowered the target)."""
        return self.clean_score - self.ablated_score

    @property
    def prob_drop(self) -> float:
        return self.clean_prob - self.ablated_prob

    @property
    def choice_changed(self) -> bool:
        return self.clean_choice != self.ablated_choice


Choices = Sequence[int | Sequence[int]]


def _choice_groups(choices: Choices | None, d_vocab: int) -> list[list[int]] | None:
    if choices is None:
        return None
    groups = [
        [as_index(t, "A choice token id") for t in (c if isinstance(c, Sequence) or getattr(c, "ndim", 0) else [c])]
        for c in choices
    ]  # a label is one id (int, numpy or 0-d tensor) or a group (sequence, 1-D array or tensor)
    if len(groups) < 2 or not all(groups):
        raise InvalidInputError("choices needs at least two labels, each a token id or a non-empty list of ids.")
    if bad := [t for group in groups for t in group if t >= d_vocab]:
        raise InvalidInputError(f"choice token id {bad[0]} is outside the vocabulary (0..{d_vocab - 1}).")
    return groups


def _first_nonfinite(score: Tensor, prob: Tensor) -> int | None:
    """The first batch row whose measured score or probability is NaN/inf (None: all finite)."""
    bad = (~torch.isfinite(score) | ~torch.isfinite(prob)).nonzero().flatten()
    return int(bad[0]) if bad.numel() else None


def _measure(
    logits: Tensor, steps: Sequence[Step], choices: list[list[int]] | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Per-row ``(score [b], prob [b], choice index [b] or None)`` from the logits at the step
    positions, ``logits [b, step, vocab]`` (row ``j`` of the step axis is ``steps[j].position``)."""
    at = logits.float()  # [b, step, vocab]
    score = torch.stack([s.target(at[:, j]) for j, s in enumerate(steps)], dim=1).mean(dim=1)
    token_ids = torch.tensor([s.target.token_id for s in steps], device=logits.device)
    probs = torch.softmax(at, dim=-1).gather(-1, token_ids[None, :, None].expand(at.shape[0], -1, 1))
    choice = None
    if choices is not None:
        choice = torch.stack([at[:, -1, group].amax(dim=-1) for group in choices], dim=-1).argmax(dim=-1)
    return score, probs[..., 0].mean(dim=1), choice


@torch.no_grad()
def ablation_effects(
    model,
    tokens: TokenIds | str,
    target: Target | Sequence[Step] | str | int,
    ablations: Sequence[Ablation],
    *,
    choices: Choices | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> list[AblationEffect]:
    """Effects of many ablations on one sequence: one clean forward, ``ceil(n / batch_size)`` ablated ones.

    Args:
        model: a ``TransformerBridge``.
        tokens: ``[pos]`` token ids, or a prompt text (encoded as :func:`~gradellm_lens.explain` does).
        target: a :class:`Target` (explained at the last position), a list of :class:`Step`, or
            a token at the last position as text (its first token, as ``explain``'s ``target=``) or id.
        ablations: the ablations; row ``j`` of a batch carries ``ablations[j]`` only.
        choices: per label, a token id or a list of ids; the winning label index is recorded.
        batch_size: ablations per forward pass.
        progress: show a tqdm bar over batches.

    Raises:
        InvalidInputError: bad token ids (outside the vocabulary, longer than the context), steps,
            targets, choices or ``batch_size``.
        NumericalError: NaN/inf logits at an explained position, clean or under an ablation (named).
    """
    batch_size = as_index(batch_size, "batch_size", minimum=1)
    if isinstance(tokens, str):
        tokens = encode_prompt(model, tokens)
    if isinstance(target, (str, int)) and not isinstance(target, bool):
        target = Target(single_token(model, target, "target"))
    batch = as_batch(model, tokens)
    if batch.shape[0] != 1:
        raise InvalidInputError("ablation_effects takes one sequence ([pos] token ids); loop over a dataset.")
    steps = as_steps(batch[0], target)
    d_vocab = model_info(model).d_vocab
    for s in steps:
        s.target.validate(d_vocab)
    choice_ids = _choice_groups(choices, d_vocab)
    rows, select = logit_rows_hook(model, [s.position for s in steps])  # unembed only the step positions

    def step_logits(tokens: Tensor, fwd_hooks: Sequence = ()) -> Tensor:
        with model.hooks(fwd_hooks=[*fwd_hooks, *rows]):
            return select(model(tokens))

    clean = _measure(step_logits(batch), steps, choice_ids)
    if _first_nonfinite(clean[0], clean[1]) is not None:
        raise NumericalError("The model's logits are NaN/inf at the explained position(s), without any ablation.")
    out: list[AblationEffect] = []
    starts = range(0, len(ablations), batch_size)
    for start in progress_bar(starts, desc="ablations", unit="batch", enabled=bool(progress), leave=False):
        chunk = list(ablations[start : start + batch_size])
        logits = step_logits(batch.expand(len(chunk), -1), row_ablation_hooks(model, chunk))
        score, prob, choice = _measure(logits, steps, choice_ids)
        if (j := _first_nonfinite(score, prob)) is not None:
            raise NumericalError(
                f"Ablation {start + j} ({chunk[j]}) makes the logits at the explained position(s) NaN/inf."
            )
        out += [
            AblationEffect(
                clean_score=float(clean[0][0]),
                ablated_score=float(score[j]),
                clean_prob=float(clean[1][0]),
                ablated_prob=float(prob[j]),
                clean_choice=None if clean[2] is None else int(clean[2][0]),
                ablated_choice=None if choice is None else int(choice[j]),
            )
            for j in range(len(chunk))
        ]
    return out


def ablation_effect(
    model,
    tokens: TokenIds | str,
    target: Target | Sequence[Step] | str | int,
    ablation: Ablation,
    *,
    choices: Choices | None = None,
) -> AblationEffect:
    """The effect of one ablation on one sequence (see :func:`ablation_effects`), e.g.
    ``ablation_effect(model, "The capital of France is", " Paris", Ablation(heads=[(0, 1)]))``."""
    return ablation_effects(model, tokens, target, [ablation], choices=choices)[0]


def single_head_effects(
    model,
    tokens: TokenIds,
    target: Target | Sequence[Step],
    *,
    mode: AblationMode = "zero",
    reference: AblationReference | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 27,
    progress: bool = False,
) -> HeadImportance:
    """``score_drop`` of ablating each query head alone: the ground-truth head importance.

    Args:
        layers: restrict to these layers (default: all); the result covers only them.
        batch_size: heads per forward pass (one head per batch row).
    """
    info = model_info(model)
    layers = list(range(info.n_layers)) if layers is None else sorted(set(layers))
    heads = [(layer, h) for layer in layers for h in range(info.n_heads)]
    ablations = [Ablation(heads=[head], mode=mode, reference=reference) for head in heads]
    effects = ablation_effects(model, tokens, target, ablations, batch_size=batch_size, progress=progress)
    scores = torch.full((info.n_layers, info.n_heads), float("nan"))
    for (layer, h), effect in zip(heads, effects):
        scores[layer, h] = effect.score_drop
    return HeadImportance(scores=scores[layers], layers=tuple(layers), measure=f"{mode}_ablation_drop")


def ablated_continuation(
    model, ids: TokenIds, ablation: Ablation, max_new_tokens: int, *, stop_at_eos: bool = True
) -> TokenIds:
    """Greedy continuation of ``ids`` with ``ablation`` active at every generation step.

    Uses :func:`~gradellm_lens.attribute.greedy_continuation` (full-prefix forwards; TL's
    ``bridge.generate()`` is unreliable with its KV cache on these models).
    """
    with ablated(model, ablation):
        return greedy_continuation(model, ids, max_new_tokens, stop_at_eos)


def continuation_agreement(reference: TokenIds, other: TokenIds) -> float:
    """Fraction of ``reference``'s positions where ``other`` has the same token (missing = different)."""
    if reference.numel() == 0:
        raise InvalidInputError("The reference continuation is empty.")
    n = min(reference.numel(), other.numel())
    return float((reference[:n].cpu() == other[:n].cpu()).sum()) / reference.numel()
