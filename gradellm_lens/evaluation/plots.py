"""π-curve plots: mean π-Soft-NS and π-Soft-NC against the retaining probability π, one line per method.

π-Soft-NS rises with π (more of the important tokens kept); π-Soft-NC falls with π (less
removed). A curve above another at the same π is better on both panels; the shaded band is the
bootstrap 95% CI over examples. Rendered with matplotlib's non-interactive ``Agg`` backend.
"""

from __future__ import annotations

from pathlib import Path

from .summary import Summary


def plot_pi_curves(summary: Summary, path: str | Path) -> Path | None:
    """Write the two-panel π-curve PNG; None when no method has a finished example."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in summary.methods if m.curves]
    if not methods:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    titles = {"pi_ns": "π-Soft-NS (higher is better)", "pi_nc": "π-Soft-NC (higher is better)"}
    for ax, key in zip(axes, ("pi_ns", "pi_nc")):
        for i, m in enumerate(methods):
            curve = m.curves[key]
            style = ("-", "--", ":", "-.")[i // 10 % 4]  # the colour cycle repeats after ten methods
            (line,) = ax.plot(
                m.pis, curve.mean, linestyle=style, marker="o", markersize=3, label=f"{m.label} (n={m.n_ok})"
            )
            ax.fill_between(m.pis, curve.low, curve.high, color=line.get_color(), alpha=0.12, linewidth=0)
        ax.set_title(titles[key])
        ax.set_xlabel("retaining probability π")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score")
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{summary.task} · {summary.model}", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
