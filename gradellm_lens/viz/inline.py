"""A result as static HTML (no JavaScript): how an ``AttributionResult`` shows in a notebook.

One heading (method, variant, model, steps), the :mod:`.palette` legend, then per step the
explained token and its prefix as ``<span>`` elements coloured by score (scaled per step to the
largest ``|score|``; the score is in each token's tooltip). Token text is HTML-escaped. Being plain
HTML with inline styles, it renders wherever the notebook does, also without running any script;
the interactive CircuitsVis views are in :mod:`.views`.
"""

from __future__ import annotations

import html
import math

from ..result import AttributionResult
from ..tokens import display_token
from . import palette

MAX_STEPS = 20
"""Steps shown inline; the rest are summarised in one line."""


def _token_span(token: str, value: float, scale: float) -> str:
    rgb = palette.colour_of(value, scale)
    fg = "#fff" if palette.is_dark(rgb) else "#000"
    title = "" if not math.isfinite(value) else f' title="{value:.4g}"'
    text = html.escape(display_token(token), quote=False)
    return (
        f'<span{title} style="background:{palette.css(rgb)};color:{fg};border-right:1px solid #ddd;display:inline-block;'
        f'white-space:pre">{text}</span>'
    )


def step_html(result: AttributionResult, step: int) -> str:
    """One step: ``"2/4 -> ' Paris'"`` and its coloured prefix."""
    scores = result.step_scores(step).tolist()
    scale = max((abs(s) for s in scores if math.isfinite(s)), default=0.0)
    spans = "".join(_token_span(t, s, scale) for t, s in zip(result.tokens, scores))
    label = html.escape(f"step {step + 1}/{result.n_steps} -> {result.explained(step)}")
    return f'<div style="margin:4px 0;line-height:1.7"><code>{label}</code>: {spans}</div>'


def result_html(result: AttributionResult) -> str:
    """The whole result: heading, legend and up to :data:`MAX_STEPS` steps."""
    variant = "" if result.variant in (None, "default") else f" ({result.variant})"
    heading = html.escape(
        f"{result.method}{variant} on {result.model}: {len(result.tokens)} tokens, {result.n_steps} step(s)"
    )
    steps = [step_html(result, t) for t in range(min(result.n_steps, MAX_STEPS))]
    if result.n_steps > MAX_STEPS:
        steps.append(f"<div>... {result.n_steps - MAX_STEPS} more step(s): see gl.viz.colored_tokens_multi</div>")
    return f'<div class="gradellm-lens-result"><b>{heading}</b>{palette.legend_html()}{"".join(steps)}</div>'
