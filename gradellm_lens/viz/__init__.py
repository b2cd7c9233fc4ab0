"""Views of attribution results: terminal heatmaps and offline CircuitsVis HTML."""

from .terminal import render, render_step

__all__ = ["render", "render_step"]
