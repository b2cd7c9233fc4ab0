"""Named run presets: how many examples, Bernoulli draws, π points and random maps a run spends.

A run's confidence intervals are paired bootstrap intervals over examples (:mod:`.summary`), and the
variance of a method's paired difference to the random baseline sits mostly between examples, a
little between Bernoulli draws and random maps (:mod:`.variance`; the measured budget is in
``analyses/results/variance-budget/README.md``). So compute narrows an interval fastest when it goes to
more examples: the presets keep the draws few, score the random baseline with a pair of antithetic
maps (:mod:`.antithetic`: unbiased, and cheaper than any method with its controls) and differ
mainly in how many examples they evaluate and how fine their π grid is.

* ``quick``: a first look (20 examples, 1 draw, a 5-point π grid, shuffled control only);
* ``standard``: the budget's best allocation per CPU-second on the default 9-point π grid
  (100 examples, 2 draws, 2 antithetic random maps, shuffled and rank controls);
* ``paper``: every example, the default 9-point grid, 3 draws and 4 antithetic random maps, so that
  draws and maps add at most a few percent to the paired difference's variance.

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
        Preset("quick", 20, 1, (0.1, 0.3, 0.5, 0.7, 0.9), 2, True, ("shuffled",),
               "a first look: 20 examples, 1 draw, 5 π points, 2 antithetic random maps, shuffled control"),
        Preset("standard", 100, 2, DEFAULT_PIS, 2, True, ("shuffled", "rank"),
               "the budget's allocation: 100 examples, 2 draws, 9 π points, 2 antithetic random maps"),
        Preset("paper", None, 3, DEFAULT_PIS, 4, True, ("shuffled", "rank"),
               "every example, 3 draws, 9 π points, 4 antithetic random maps"),
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
