"""Matplotlib figures where a plot reads better than a table.

:func:`plot_pi_curves`
    π-Soft-NS and π-Soft-NC against the retaining probability π, one line per method (the
    AUCs come from :mod:`gradellm_lens.metrics`; put them in the method names if wanted), with
    optional confidence bands. NS rises with π and NC falls; higher is better for both. The
    evaluation summary (:func:`gradellm_lens.evaluation.write_summary`) draws its figure with it.
:func:`plot_head_comparison`
    A ground truth (e.g. activation patching) and several head scorers side by side, the truth's
    top heads outlined in every panel, each scorer's ρ and top-k recall in its title.
:func:`plot_head_importance`
    A ``[layer, head]`` importance heatmap: of a Grad-ELLM result (reduced by
    :func:`gradellm_lens.analysis.head_importance`, by default ``"positive"`` =
    :math:`\\sum_i \\operatorname{ReLU}(c^{\\ell,h}_i)`, mean over steps), or of any
    :class:`~gradellm_lens.analysis.HeadImportance` (e.g. ablation effects).

All return the :class:`~matplotlib.figure.Figure` and also save it when ``path`` is given.
:func:`figure_data_uri` embeds a figure in an offline HTML page. The Agg backend is used, so no
display is needed.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..optional import require

require("matplotlib", "evaluation", "Figures (gradellm_lens.viz.plots)")
from matplotlib.figure import Figure  # after the check above, whose error names the extra
from matplotlib.patches import Rectangle

from ..errors import InvalidInputError
from ..result import AttributionResult
from . import palette

if TYPE_CHECKING:
    from ..analysis import HeadImportance, ImportanceMeasure

PiCurve = tuple[Sequence[float], Sequence[float], Sequence[float]]
"""``(pis, ns_values, nc_values)`` of one method."""

PiIntervals = tuple[tuple[Sequence[float], Sequence[float]], tuple[Sequence[float], Sequence[float]]]
"""``((ns_low, ns_high), (nc_low, nc_high))`` of one method: a band around each of its curves."""


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return fig


def plot_pi_curves(
    curves: Mapping[str, PiCurve],
    path: str | Path | None = None,
    *,
    intervals: Mapping[str, PiIntervals] | None = None,
    title: str | None = None,
) -> Figure:
    """π-Soft-NS (left) and π-Soft-NC (right) curves of several methods.

    π-Soft-NS rises with π (more of the important tokens kept) and π-Soft-NC falls with π (less
    removed); a curve above another at the same π is better on both panels.

    Args:
        curves: ``{method: (pis, ns_values, nc_values)}``; ``pis`` increasing, NaN points skipped.
        path: also save the figure here (format from the suffix).
        intervals: optional ``{method: ((ns_low, ns_high), (nc_low, nc_high))}`` drawn as a shaded
            band around the method's curves (e.g. the bootstrap 95% CI over examples).
        title: optional figure title.

    Returns:
        The figure. Past ten methods the colours repeat with another line style.
    """
    if not curves:
        raise InvalidInputError("plot_pi_curves needs at least one method's curves.")
    intervals = intervals or {}
    fig = Figure(figsize=(9.5, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for i, (name, (pis, ns, nc)) in enumerate(curves.items()):
        pis, ns, nc = (np.asarray(a, dtype=float) for a in (pis, ns, nc))
        if not (pis.shape == ns.shape == nc.shape) or pis.ndim != 1:
            raise InvalidInputError(f"Curves of {name!r} must be three 1-D sequences of equal length.")
        bands = intervals.get(name)
        style = ("-", "--", ":", "-.")[i // 10 % 4]  # the colour cycle repeats after ten methods
        for panel, (ax, values) in enumerate(zip(axes, (ns, nc))):
            ok = np.isfinite(values)
            (line,) = ax.plot(pis[ok], values[ok], linestyle=style, marker="o", markersize=3, label=name)
            if bands is not None:
                low, high = (np.asarray(a, dtype=float) for a in bands[panel])
                if not low.shape == high.shape == pis.shape:
                    raise InvalidInputError(f"Intervals of {name!r} must match its π grid in length.")
                ok &= np.isfinite(low) & np.isfinite(high)
                ax.fill_between(pis[ok], low[ok], high[ok], color=line.get_color(), alpha=0.12, linewidth=0)
    for ax, which in zip(axes, ("NS", "NC")):
        ax.set_xlabel("retaining probability π")
        ax.set_ylabel(f"π-Soft-{which}")
        ax.set_title(f"π-Soft-{which} (higher is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_head_importance(
    source: AttributionResult | HeadImportance,
    path: str | Path | None = None,
    *,
    measure: ImportanceMeasure = "positive",
    step: int | None = None,
) -> Figure:
    """Heatmap of a ``[layer, head]`` importance (rows: layers, columns: heads).

    Args:
        source: a :class:`~gradellm_lens.analysis.HeadImportance` (any measure, e.g. ablation
            effects), or a Grad-ELLM result, reduced with
            :func:`~gradellm_lens.analysis.head_importance` (``measure``, ``step`` or the mean
            over steps).
        path: also save the figure here.
        measure: see :mod:`gradellm_lens.analysis.importance` (results only).
        step: one step instead of the mean over steps (results only).

    Returns:
        The figure, in the colours of :mod:`.palette`: white to blue for non-negative scores,
        red-white-blue (blue positive, red negative, centred on 0) for signed ones.
    """
    from ..analysis import HeadImportance, head_importance

    if isinstance(source, AttributionResult):
        if step is not None and not -source.n_steps <= step < source.n_steps:
            raise InvalidInputError(f"step {step} is out of range: the result has {source.n_steps} step(s).")
        importance = head_importance(source, measure, steps=None if step is None else [step])
        which = "mean over steps" if step is None else f"step {step % source.n_steps + 1}"
    elif isinstance(source, HeadImportance):
        importance, which = source, ""
    else:
        raise InvalidInputError(f"Pass an AttributionResult or a HeadImportance, not {type(source).__name__}.")
    values = importance.scores.numpy()
    n_layers, n_heads = values.shape
    m = float(np.nanmax(np.abs(values))) if values.size else 0.0
    m = m if m > 0 else 1.0
    signed = bool(np.nanmin(values) < 0)
    fig = Figure(figsize=(2.0 + 0.45 * n_heads, 1.3 + 0.26 * n_layers), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(
        values, cmap=palette.colormap(signed), vmin=-m if signed else 0.0, vmax=m,
        aspect="auto", interpolation="nearest",
    )  # fmt: skip
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers), [f"L{layer}" for layer in importance.layers])
    ax.set_xlabel("KV head" if importance.unit == "kv" else "head")
    ax.set_ylabel("layer")
    ax.set_title(f"head importance ({importance.measure})" + (f", {which}" if which else ""), fontsize="medium")
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("blue = positive" + (", red = negative" if signed else ""), fontsize="small")
    return _save(fig, path)


def plot_head_comparison(
    truth: HeadImportance,
    scorers: Mapping[str, HeadImportance],
    path: str | Path | None = None,
    *,
    k: int = 10,
    truth_label: str = "ground truth",
) -> Figure:
    """The ground truth and each scorer side by side, one ``[layer, head]`` heatmap per panel.

    Each panel has its own colour scale (the scorers' units differ; :mod:`.palette` colours:
    white-blue for non-negative, red-white-blue for signed scores). The truth's ``k`` most important
    heads are outlined in **every** panel, and each scorer's title gives its Spearman's ρ and top-k
    recall against the truth (:func:`~gradellm_lens.analysis.rank_agreement`), so one can see where
    a scorer puts its mass and which of the truth's heads it misses. Rows follow the truth's layers.

    Args:
        truth: the ground truth (e.g. activation patching's oriented effects, pooled over prompts).
        scorers: ``{name: HeadImportance}`` of the same heads.
        path: also save the figure here.
        k: how many of the truth's top heads to outline and score.

    Returns:
        The figure (displays in a notebook; :func:`figure_data_uri` embeds it in a page).
    """
    from ..analysis import HeadImportance, rank_agreement

    panels = {truth_label: truth, **dict(scorers)}
    if not scorers or not all(isinstance(v, HeadImportance) for v in panels.values()):
        raise InvalidInputError("plot_head_comparison needs a HeadImportance truth and at least one scorer.")
    if any(v.layers != truth.layers or v.scores.shape != truth.scores.shape for v in panels.values()):
        raise InvalidInputError("Every scorer must cover the truth's layers and heads.")
    n_layers, n_heads = truth.scores.shape
    top = truth.top(min(k, n_layers * n_heads))
    rows = {layer: i for i, layer in enumerate(truth.layers)}
    fig = Figure(figsize=(0.6 + len(panels) * (0.9 + 0.28 * n_heads), 1.6 + 0.2 * n_layers), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (name, importance) in zip(axes, panels.items()):
        values = importance.scores.numpy()
        m = float(np.nanmax(np.abs(values))) if values.size else 0.0
        m = m if m > 0 else 1.0
        signed = bool(np.nanmin(values) < 0)
        image = ax.imshow(
            values, cmap=palette.colormap(signed), vmin=-m if signed else 0.0, vmax=m,
            aspect="auto", interpolation="nearest",
        )  # fmt: skip
        for layer, head in top:
            ax.add_patch(Rectangle((head - 0.5, rows[layer] - 0.5), 1, 1, fill=False, lw=1.2, ec="black"))
        title = name
        if importance is not truth:
            agreement = rank_agreement(importance, truth, k=k)
            title += f"\nρ = {agreement.spearman:.2f}, top-{agreement.k} {agreement.top_k:.2f}"
        ax.set_title(title, fontsize="small")
        ax.set_xticks(range(0, n_heads, max(1, n_heads // 8)))
        ax.set_xlabel("head", fontsize="small")
        fig.colorbar(image, ax=ax, shrink=0.6, pad=0.01)
    axes[0].set_yticks(range(0, n_layers, max(1, n_layers // 15)),
                       [f"L{truth.layers[i]}" for i in range(0, n_layers, max(1, n_layers // 15))])  # fmt: skip
    axes[0].set_ylabel("layer")
    fig.suptitle(f"outlined: the {truth_label}'s top {len(top)} heads", fontsize="small")
    return _save(fig, path)


def figure_data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (for offline pages)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
