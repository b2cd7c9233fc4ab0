"""Views of attribution results: terminal heatmaps, offline CircuitsVis views, HTML reports, figures.

One colour convention everywhere (:mod:`.palette`): blue = positive, red = negative, white = 0.

- :mod:`.terminal`: ``render`` / ``render_step`` (ANSI heatmaps, wrapped between tokens).
- :mod:`.inline`: a result as static HTML (``AttributionResult`` shows this in notebooks).
- :mod:`.views`: CircuitsVis views (``colored_tokens``, ``colored_tokens_multi``, ``layer_tokens``,
  ``layer_head_tokens``, ``layer_maps``, ``head_maps``, ``compare_methods``), each a :class:`~.offline.View`
  that renders offline in notebooks and pages.
- :mod:`.report`: ``write_report`` (one self-contained HTML page).
- :mod:`.plots`: matplotlib figures (``plot_pi_curves``, ``plot_head_importance``, ``plot_head_comparison``);
  matplotlib is an optional package (the ``evaluation`` extra), imported on first use of a figure.
"""

from ..result import set_renderer
from .inline import result_html
from .offline import View, write_views
from .report import write_report
from .terminal import render, render_step
from .views import (
    colored_tokens,
    colored_tokens_multi,
    compare_methods,
    head_maps,
    layer_head_tokens,
    layer_maps,
    layer_tokens,
)

_FIGURES = ("plot_head_comparison", "plot_head_importance", "plot_pi_curves")


def __getattr__(name: str):
    """The figure functions of :mod:`.plots`, imported on first use (matplotlib is optional)."""
    if name in _FIGURES:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


set_renderer("text", render)
set_renderer("html", result_html)

__all__ = [
    "View",
    "colored_tokens",
    "colored_tokens_multi",
    "compare_methods",
    "head_maps",
    "layer_head_tokens",
    "layer_maps",
    "layer_tokens",
    "plot_head_comparison",
    "plot_head_importance",
    "plot_pi_curves",
    "render",
    "render_step",
    "write_report",
    "write_views",
]
