"""Named run presets: how many examples, Bernoulli draws, π points and random maps a run spends.

A run's confidence intervals are paired bootstrap intervals over examples (:mod:`.summary`). The
variance of a method's paired difference to the random baseline sits between examples, between
Bernoulli draws and between random maps (:mod:`.variance`; the measured budget is in
``analyses/results/variance-budget/README.md``), and every draw multiplies the cost of every map
while the per-example fixed cost (generation, the step's two reference forwards, attribution) is
small. So a CPU-second narrows an interval most when it buys examples: with the cost ``a + b·D`` per
example and a variance ``σ²_ex + σ²_draw / D``, the best draw count ``D* = √(a σ²_draw / (b σ²_ex))``
(Cochran 1977, *Sampling Techniques*, §10.6) is below one for every method measured. The random
baseline is scored with antithetic pairs of maps (:mod:`.antithetic`: unbiased, and the two maps of
a pair are strongly anticorrelated), so it costs less than one method with its controls. Every
preset keeps the default 9-point π grid: a coarser grid is cheaper but estimates a different area
(shifted by about a confidence half-width), so runs of different presets stay comparable.

* ``quick``: a first look: 20 examples, 1 draw, 2 antithetic random maps, shuffled control only;
* ``standard``: the budget's allocation per CPU-second: 200 examples, 1 draw, 2 antithetic random
  maps, shuffled and rank controls;
* ``paper``: every example (the examples are exhausted, so the remaining compute goes to draws and
  maps): 3 draws, 4 antithetic random maps, shuffled and rank controls.

Explicit options override a preset's values; a run that uses a preset records its name in the
results header (``config.preset``), a run without one records nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import unknown_name_error
from ..metrics.pi_soft import DEFAULT_PIS

PresetName = Literal["quick", "standard", "paper"]


@dataclass(frozen=True)
class Preset:
    """One named allocation of a run's compute.

    Attributes:
        name: the preset's name, recorded in the results header.
        n: examples (None: all of the task's).
        n_draws: Bernoulli draws per keep vector.
        pis: the π grid.
        random_maps: maps the random baseline averages (an even number when ``antithetic``).
        antithetic: score the random maps as antithetic pairs (:mod:`.antithetic`).
        controls: per-method controls.
        description: one line for ``--help`` and the docs.
    """

    name: str
    n: int | None
    n_draws: int
    pis: tuple[float, ...]
    random_maps: int
    antithetic: bool
    controls: tuple[str, ...]
    description: str = ""

    def run_options(self) -> dict[str, Any]:
        """The preset's :class:`~.runner.EvaluationConfig` fields (its metric options apart)."""
        return {
            "n": self.n,
            "random_maps": self.random_maps,
            "antithetic": self.antithetic,
            "controls": self.controls,
            "preset": self.name,
        }

    def metric_options(self) -> dict[str, Any]:
        """The preset's :class:`~gradellm_lens.metrics.FaithfulnessConfig` fields."""
        return {"n_draws": self.n_draws, "pis": self.pis}


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("quick", 20, 1, DEFAULT_PIS, 2, True, ("shuffled",),
               "a first look: 20 examples, 1 draw, 2 antithetic random maps, shuffled control only"),
        Preset("standard", 200, 1, DEFAULT_PIS, 2, True, ("shuffled", "rank"),
               "the budget's allocation per CPU-second: 200 examples, 1 draw, 2 antithetic random maps"),
        Preset("paper", None, 3, DEFAULT_PIS, 4, True, ("shuffled", "rank"),
               "every example, 3 draws, 4 antithetic random maps"),
    )
}  # fmt: skip


def list_presets() -> list[str]:
    """The preset names, cheapest first."""
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        InvalidInputError: an unknown name (with a suggestion).
    """
    if name not in PRESETS:
        raise unknown_name_error("preset", name, list(PRESETS))
    return PRESETS[name]
