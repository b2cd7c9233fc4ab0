r"""Random baseline: :math:`s_i \sim U(0, 1)` independently per token and step, seeded.

The scores ignore the model and the target; faithfulness metrics use them as the chance level
(ReAGent reports every method relative to it). Row :math:`t` is drawn from a
``torch.Generator`` seeded with ``seed`` after the rows of earlier steps, so a result is
reproducible from the seed alone and independent of the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..targets import Step, as_index
from ..typing import TokenIds
from .base import AttributionMethod, MethodOutput


@dataclass(frozen=True)
class RandomOptions:
    """Options of :class:`RandomAttribution`.

    Attributes:
        seed: seed of the generator (default 0).
    """

    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", as_index(self.seed, "seed"))


class RandomAttribution(AttributionMethod):
    """Random baseline: seeded U(0, 1) score per token (ignores the model)."""

    method_name: ClassVar[str] = "random"
    Options: ClassVar[type] = RandomOptions

    def _attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        generator = torch.Generator().manual_seed(self.options.seed)
        return MethodOutput(scores=torch.rand(len(steps), tokens.shape[0], generator=generator))
