r"""Random baseline: :math:`s_i \sim U(0, 1)` independently per token, a fresh map for every step.

The scores ignore the model; faithfulness metrics use them as the chance level (ReAGent, Zhao &
Shan 2024, reports every method relative to a random map). The map of a step is drawn from a
``torch.Generator`` seeded with

.. math:: \operatorname{seed}_t = H(\texttt{"random"}, \text{seed}, \text{sample}, x_{\le t}, \hat y_t)

where :math:`H` is :func:`gradellm_lens.seeding.stable_seed` (a stable hash), :math:`x_{\le t}` the
step's prefix token ids and :math:`\hat y_t` its target id. Hence

* every (example, step) gets its own map, and the same prefix and target always get the same one
  (reproducible from the seed alone, independent of the device and of the other steps);
* ``sample = 0, 1, …, K - 1`` select K independent maps of the same step: a chance level is the
  mean over several maps, never one fixed positional pattern;
* the ``"random"`` tag keeps the maps independent of the metrics' Bernoulli masks, which are seeded
  from the same prefix and target.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..seeding import stable_seed
from ..targets import Target, as_index
from ..tensor_types import TokenIds, TokenScores
from .base import AttributionMethod


@dataclass(frozen=True)
class RandomOptions:
    """Options of :class:`RandomAttribution`.

    Attributes:
        seed: base seed (default 0).
        sample: which of the independent maps of a step to draw (0, 1, ...; default 0).
    """

    seed: int = 0
    sample: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", as_index(self.seed, "seed"))
        object.__setattr__(self, "sample", as_index(self.sample, "sample"))


class RandomAttribution(AttributionMethod):
    """Random baseline: a U(0, 1) score per token, drawn per (prefix, target) from the seed (ignores the model)."""

    method_name: ClassVar[str] = "random"
    Options: ClassVar[type] = RandomOptions

    def _attribute_step(self, prefix: TokenIds, target: Target) -> TokenScores:
        seed = stable_seed("random", self.options.seed, self.options.sample, prefix, target.token_id)
        return torch.rand(prefix.shape[0], generator=torch.Generator().manual_seed(seed))

    def samples(self, count: int) -> list[RandomAttribution]:
        """``count`` independent maps: this method with ``sample``, ``sample + 1``, …, ``sample + count - 1``."""
        count = as_index(count, "count", minimum=1)
        first, options = self.options.sample, dataclasses.asdict(self.options)
        return [RandomAttribution(self.model, sign=self.sign, **{**options, "sample": first + k}) for k in range(count)]
