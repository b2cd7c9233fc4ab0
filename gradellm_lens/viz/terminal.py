"""Per-token heatmaps for the terminal (ANSI 256-colour backgrounds, or plain ``token[score]``)."""

from __future__ import annotations

import math

from ..result import AttributionResult
from .tokens import display_token

# white -> deep red, 256-colour palette indices
_RAMP = (231, 224, 217, 210, 203, 196, 160)


def _cell(token: str, value: float, vmax: float, color: bool) -> str:
    text = display_token(token)
    if not math.isfinite(value):
        return text
    if not color:
        return f"{text}[{value:.2f}]"
    level = 0 if vmax <= 0 else min(len(_RAMP) - 1, int(round(value / vmax * (len(_RAMP) - 1))))
    fg = 16 if level < 4 else 231
    return f"\x1b[48;5;{_RAMP[level]}m\x1b[38;5;{fg}m{text}\x1b[0m"


def render_step(result: AttributionResult, step: int = 0, *, color: bool = True) -> str:
    """One line: the prefix of ``step`` coloured by score (scaled to the step's max)."""
    scores = result.step_scores(step).tolist()
    finite = [s for s in scores if math.isfinite(s)]
    vmax = max(finite, default=0.0)
    cells = "".join(_cell(t, s, vmax, color) for t, s in zip(result.tokens, scores))
    return f"step {step + 1}/{result.n_steps} -> {display_token(result.target_tokens[step])!r}: {cells}"


def render(result: AttributionResult, *, color: bool = True, max_steps: int | None = None) -> str:
    """All steps (or the first ``max_steps``), one block each, with the top tokens listed."""
    lines = [f"{result.method} ({result.variant or 'default'}) on {result.model}"]
    for step in range(result.n_steps if max_steps is None else min(max_steps, result.n_steps)):
        lines.append(render_step(result, step, color=color))
        scores = result.step_scores(step)
        top = scores.nan_to_num(nan=-1.0).argsort(descending=True)[:5].tolist()
        lines.append(
            "    top: " + ", ".join(f"{display_token(result.tokens[i])!r} {float(scores[i]):.3f}" for i in top)
        )
    return "\n".join(lines)
