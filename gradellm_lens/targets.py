"""What an attribution explains: a target token's logit (default), log-prob or prob, or a contrast.

Grad-ELLM explains the **pre-softmax logit** of the token the model generates (Huang & Chan,
arXiv 2601.03089, following Grad-ECLIP).
The same :class:`Target` serves every method, so all methods explain the same scalar.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .errors import InvalidInputError, check_choice

ObjectiveKind = Literal["logit", "log_prob", "prob"]
OBJECTIVES: tuple[str, ...] = ("logit", "log_prob", "prob")


def check_objective(objective: str) -> None:
    """Raise :class:`InvalidInputError` (with a suggestion) unless ``objective`` is one of :data:`OBJECTIVES`."""
    check_choice("objective", objective, OBJECTIVES)


def as_index(value: object, what: str, *, minimum: int = 0) -> int:
    """``value`` as a plain ``int >= minimum`` (Python or numpy/torch integer, not bool), else raise."""
    kind = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
    try:
        if isinstance(value, bool):
            raise TypeError
        index = operator.index(value)
    except TypeError:
        raise InvalidInputError(f"{what} must be {kind}, got {value!r} ({type(value).__name__}).") from None
    if index < minimum:
        raise InvalidInputError(f"{what} must be {kind}, got {index}.")
    return index


@dataclass(frozen=True)
class Target:
    """The scalar explained at one step.

    ``score(logits) = f(logits)[token_id] - f(logits)[contrast_id]`` where ``f`` is the identity
    (``"logit"``), ``log_softmax`` (``"log_prob"``) or ``softmax`` (``"prob"``); the contrast term
    is dropped when ``contrast_id`` is None.

    Raises:
        InvalidInputError: a token id that is not a non-negative integer, an unknown objective, or
            ``contrast_id == token_id`` (the difference is identically 0: nothing to attribute).
    """

    token_id: int
    contrast_id: int | None = None
    objective: ObjectiveKind = "logit"

    def __post_init__(self) -> None:
        check_objective(self.objective)
        for name in ("token_id", "contrast_id"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_index(value, f"Target {name}"))
        if self.contrast_id == self.token_id:
            raise InvalidInputError(
                f"The contrast token id equals the target token id ({self.token_id}): target minus contrast is "
                "identically 0, so there is nothing to attribute; choose a different contrast."
            )

    def validate(self, vocab_size: int) -> None:
        """Raise :class:`InvalidInputError` if a token id is outside ``[0, vocab_size)``."""
        for name in ("token_id", "contrast_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < vocab_size:
                raise InvalidInputError(
                    f"Target {name} {value} is outside the model's vocabulary (valid ids: 0..{vocab_size - 1})."
                )

    def __call__(self, logits: Tensor) -> Tensor:
        """Score ``logits[..., vocab]`` -> ``[...]``, differentiably."""
        logits = _transform(logits, self.objective)
        value = logits[..., self.token_id]
        if self.contrast_id is not None:
            value = value - logits[..., self.contrast_id]
        return value


def _transform(logits: Tensor, objective: ObjectiveKind) -> Tensor:
    """``f(logits)`` of :class:`Target`: identity, ``log_softmax`` or ``softmax`` (the latter two in float32)."""
    if objective == "log_prob":
        return torch.log_softmax(logits.float(), dim=-1)
    if objective == "prob":
        return torch.softmax(logits.float(), dim=-1)
    return logits


def stacked_values(targets: Sequence[Target], logits: Tensor) -> Tensor:
    """``values[..., i] = targets[i](logits[..., i, :])`` for ``logits [..., n, vocab]``, differentiably.

    Equal to stacking the ``n`` calls, but reads the token (and contrast) columns with one gather
    per objective kind. A batched backward through ``n`` separate selections would materialise
    ``n`` gradients of the size of ``logits`` each; through the gather it writes one.
    """
    n = len(targets)
    if logits.shape[-2] != n:
        raise InvalidInputError(f"stacked_values got {n} targets for {logits.shape[-2]} rows of logits.")
    if n == 1:  # one selection costs nothing extra
        return targets[0](logits[..., 0, :])[..., None]
    device, batch = logits.device, logits.shape[:-2]

    def column(ids: list[int]) -> Tensor:
        return torch.tensor(ids, device=device).expand(*batch, n)[..., None]

    token = column([t.token_id for t in targets])
    contrast = column([t.token_id if t.contrast_id is None else t.contrast_id for t in targets])
    has_contrast = torch.tensor([t.contrast_id is not None for t in targets], device=device)
    kinds = [t.objective for t in targets]
    values = None
    for kind in dict.fromkeys(kinds):
        transformed = _transform(logits, kind)
        value = transformed.gather(-1, token)[..., 0]
        value = value - torch.where(has_contrast, transformed.gather(-1, contrast)[..., 0], 0)
        if values is None:
            values = value
        else:
            chosen = torch.tensor([k == kind for k in kinds], device=device)
            dtype = torch.promote_types(values.dtype, value.dtype)
            values = torch.where(chosen, value.to(dtype), values.to(dtype))
    return values


@dataclass(frozen=True)
class Step:
    """One explained generation step: the logits at ``position`` predict ``target``.

    The attributed prefix is ``tokens[: position + 1]``; for a generated token at index ``j`` of
    the full sequence, ``position = j - 1``.
    """

    position: int
    target: Target

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", as_index(self.position, "Step position"))
        if not isinstance(self.target, Target):
            raise InvalidInputError(
                f"Step target must be a Target (e.g. Target(token_id)), got {type(self.target).__name__}."
            )


def as_steps(tokens: Tensor, target: Target | Sequence[Step]) -> list[Step]:
    """A :class:`Target` becomes one step at the last position of ``tokens`` (``[..., pos]``);
    steps are checked against ``tokens``."""
    steps = [Step(int(tokens.shape[-1]) - 1, target)] if isinstance(target, Target) else list(target)
    if not steps or not all(isinstance(s, Step) for s in steps):
        raise InvalidInputError("target must be a Target or a non-empty sequence of Step objects.")
    bad = [s.position for s in steps if not 0 <= s.position < tokens.shape[-1]]
    if bad:
        raise InvalidInputError(f"Step position {bad[0]} is outside the sequence (length {tokens.shape[-1]}).")
    return steps
