"""What an attribution explains: a target token's logit (default), log-prob or prob, or a contrast.

Grad-ELLM explains the **pre-softmax logit** of the token the model generates (method-spec 1.1).
The same :class:`Target` serves every method, so all methods explain the same scalar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .errors import InvalidInputError

ObjectiveKind = Literal["logit", "log_prob", "prob"]
OBJECTIVES: tuple[str, ...] = ("logit", "log_prob", "prob")


@dataclass(frozen=True)
class Target:
    """The scalar explained at one step.

    ``score(logits) = f(logits)[token_id] - f(logits)[contrast_id]`` where ``f`` is the identity
    (``"logit"``), ``log_softmax`` (``"log_prob"``) or ``softmax`` (``"prob"``); the contrast term
    is dropped when ``contrast_id`` is None.
    """

    token_id: int
    contrast_id: int | None = None
    objective: ObjectiveKind = "logit"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InvalidInputError(f"Unknown objective {self.objective!r}; use one of {', '.join(OBJECTIVES)}.")
        for name in ("token_id", "contrast_id"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 0):
                raise InvalidInputError(f"Target {name} must be a non-negative integer token id, got {value!r}.")

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
        if self.objective == "log_prob":
            logits = torch.log_softmax(logits.float(), dim=-1)
        elif self.objective == "prob":
            logits = torch.softmax(logits.float(), dim=-1)
        value = logits[..., self.token_id]
        if self.contrast_id is not None:
            value = value - logits[..., self.contrast_id]
        return value


@dataclass(frozen=True)
class Step:
    """One explained generation step: the logits at ``position`` predict ``target``.

    The attributed prefix is ``tokens[: position + 1]``; for a generated token at index ``j`` of
    the full sequence, ``position = j - 1``.
    """

    position: int
    target: Target
