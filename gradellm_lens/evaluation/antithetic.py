r"""Antithetic random maps: each random map followed by its reflection :math:`1 - s`.

The random baseline's value on a step is the mean of a metric :math:`f` over maps :math:`s` with
i.i.d. :math:`U(0, 1)` scores. If :math:`s_i \sim U(0, 1)` then so is :math:`1 - s_i`, and
independently across tokens, so the reflected map :math:`1 - s` is itself a random map: its
ranking of the tokens is the reverse of :math:`s`'s, and over the draw of :math:`s` every ranking
is equally likely for both. The pair's mean :math:`\tfrac12 (f(s) + f(1 - s))` is therefore an
unbiased estimate of :math:`E f(s)`, with variance
:math:`\tfrac12 \operatorname{Var} f\,(1 + \operatorname{corr}(f(s), f(1 - s)))`: below that of two
independent maps whenever :math:`f` of a map and of its reversal are negatively correlated
(antithetic variates, Hammersley & Morton 1956, *Proc. Cambridge Phil. Soc.* 52). π-Soft-NS keeps
the tokens a map ranks high and the reversal keeps the others, so the two are anticorrelated.

``antithetic = True`` in :class:`~.runner.EvaluationConfig` scores ``random_maps = K`` (even) maps
as ``K / 2`` independent maps and their reflections, in the order ``s_0, 1 - s_0, s_1, 1 - s_1, …``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidInputError
from ..tensor_types import TokenScores


def independent_maps(random_maps: int, antithetic: bool) -> int:
    """How many independent random maps a step draws: ``K``, or ``K / 2`` when antithetic."""
    if antithetic and random_maps % 2:
        raise InvalidInputError(f"antithetic random maps come in pairs; random_maps must be even, got {random_maps}.")
    return random_maps // 2 if antithetic else random_maps


def with_reflections(maps: Sequence[TokenScores]) -> list[TokenScores]:
    """``[s_0, 1 - s_0, s_1, 1 - s_1, …]`` for maps ``s_k`` with scores in ``[0, 1]``."""
    return [row for s in maps for row in (s, 1.0 - s)]
