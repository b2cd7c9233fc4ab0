"""π-curve plots: mean π-Soft-NS and π-Soft-NC against the retaining probability π, one line per method.

π-Soft-NS rises with π (more of the important tokens kept); π-Soft-NC falls with π (less
removed). A curve above another at the same π is better on both panels; the shaded band is the
bootstrap 95% CI over examples. Rendered with matplotlib's non-interactive ``Agg`` backend.

The plot takes plain curves (:class:`Band`), not summaries, so :mod:`.summary` uses it without an
import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Band:
    """One method's curve: its label, the π grid, and the mean with the CI bounds at each π."""

    label: str
    pis: Sequence[float]
    mean: Sequence[float]
    low: Sequence[float]
    high: Sequence[float]


def plot_pi_curves(ns: Sequence[Band], nc: Sequence[Band], title: str, path: str | Path) -> Path | None:
    """Write the two-panel π-curve PNG (π-Soft-NS left, π-Soft-NC right); None when there is no curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not ns and not nc:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    titles = ("π-Soft-NS (higher is better)", "π-Soft-NC (higher is better)")
    for ax, bands, panel in zip(axes, (ns, nc), titles):
        for i, band in enumerate(bands):
            style = ("-", "--", ":", "-.")[i // 10 % 4]  # the colour cycle repeats after ten methods
            (line,) = ax.plot(band.pis, band.mean, linestyle=style, marker="o", markersize=3, label=band.label)
            ax.fill_between(band.pis, band.low, band.high, color=line.get_color(), alpha=0.12, linewidth=0)
        ax.set_title(panel)
        ax.set_xlabel("retaining probability π")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score")
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
