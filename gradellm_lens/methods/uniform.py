r"""Uniform baseline: :math:`s_i = 1` for every token of every step's prefix.

The all-equal map singles out no token, so under π-Soft-NS/NC (arXiv 2601.03089) every perturbable
position keeps probability π and the score is the model's response to masking a fraction
:math:`1 - \pi` of the input at random, with no attribution at all. It is the expected value of
the ``random`` baseline's retention (an i.i.d. random map keeps every position with mean π), so
random and uniform should agree within their confidence intervals; a method is informative only
when it beats both. The metrics flag such steps ``flat`` (scored as the uniform map by
definition), which is exactly what this baseline is.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..targets import Target
from ..tensor_types import TokenIds, TokenScores
from .base import AttributionMethod


class UniformAttribution(AttributionMethod):
    """Uniform baseline: the same score (1) for every token (ignores the model)."""

    method_name: ClassVar[str] = "uniform"

    def _attribute_step(self, prefix: TokenIds, target: Target) -> TokenScores:
        return torch.ones(prefix.shape[0])
