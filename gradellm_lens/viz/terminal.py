"""Per-token heatmaps for the terminal: ANSI 256-colour backgrounds, or plain ``token[score]``.

Colours follow :mod:`.palette` (blue = positive, red = negative, white = 0, scaled per step to the
step's largest ``|score|``), with a legend line. Tokens are separated by ``|``, so neighbours with
similar colours stay apart, and lines wrap to the terminal width between tokens: never inside a
token or a score (a token wider than the line gets a line of its own). Colour is used only when
the output stream is a terminal (and ``NO_COLOR`` is unset), unless ``color=`` says otherwise.
Each step ends with its top tokens (:func:`~.views.top_tokens`: ``' a'@12 0.550``, the position
telling repeated tokens apart).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import unicodedata
from typing import TextIO

from ..result import AttributionResult
from ..tokens import display_token
from . import palette
from .views import top_tokens

SEPARATOR = "|"
"""Drawn between two tokens (in grey, with colour)."""
INDENT = "    "
_RESET = "\x1b[0m"
_GREY = "\x1b[38;5;244m"


def use_color(file: TextIO | None = None) -> bool:
    """Colour by default only on a terminal, never when ``NO_COLOR`` is set (https://no-color.org)."""
    stream = sys.stdout if file is None else file
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def text_width(text: str) -> int:
    """Terminal columns of ``text`` (wide East Asian characters and emoji count 2, combining marks 0)."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text
    )


def _background(value: float, scale: float) -> str:
    index, dark = palette.xterm256(value, scale)
    return f"\x1b[48;5;{index}m\x1b[38;5;{231 if dark else 16}m"


def _cell(token: str, value: float, scale: float, color: bool) -> tuple[str, int]:
    """``(printed form, width)`` of one token."""
    text = display_token(token)
    if not color:
        shown = text if not math.isfinite(value) else f"{text}[{value:.2f}]"
        return shown, text_width(shown)
    return f"{_background(value, scale)}{text}{_RESET}", text_width(text)


def _wrap(head: str, cells: list[tuple[str, int]], width: int, sep: str, sep_width: int) -> list[str]:
    """``head`` then the cells, joined by ``sep``, in lines of at most ``width`` columns (breaking between cells).

    A broken line ends with the separator (the boundary stays visible) and the next one is
    indented; room for that separator is kept on every line.
    """
    lines, line, used, fresh = [], head, text_width(head), True
    for shown, w in cells:
        if not fresh and used + 2 * sep_width + w > width:
            lines.append(line + sep.rstrip())
            line, used, fresh = INDENT, len(INDENT), True
        if not fresh:
            line, used = line + sep, used + sep_width
        line, used, fresh = line + shown, used + w, False
    return [*lines, line]


def render_step(
    result: AttributionResult, step: int = 0, *, color: bool | None = None, width: int | None = None
) -> str:
    """The prefix of ``step`` coloured by score (scaled to the step's largest ``|score|``), wrapped."""
    color = use_color() if color is None else color
    width = shutil.get_terminal_size().columns if width is None else width
    scores = result.step_scores(step).tolist()
    finite = [abs(s) for s in scores if math.isfinite(s)]
    scale = max(finite, default=0.0)
    cells = [_cell(t, s, scale, color) for t, s in zip(result.tokens, scores)]
    head = f"step {step + 1}/{result.n_steps} -> {result.explained(step)}: "
    sep = f"{_GREY}{SEPARATOR}{_RESET}" if color else SEPARATOR
    return "\n".join(_wrap(head, cells, width, sep, len(SEPARATOR)))


def legend(color: bool) -> str:
    """The legend line: the colour convention, or how plain cells read."""
    if not color:
        return "scores: token[score], tokens separated by '|'"
    swatch = " ".join(f"{_background(v, 1.0)}  {_RESET} {name}" for v, name in ((1.0, "positive"), (-1.0, "negative")))
    return f"colours: {swatch}, white 0; darker = larger |score| (per step)"


def render(
    result: AttributionResult,
    *,
    color: bool | None = None,
    file: TextIO | None = None,
    width: int | None = None,
    max_steps: int | None = None,
) -> str:
    """All steps (or the first ``max_steps``), one block each, with the top tokens listed.

    Args:
        result: the attribution result.
        color: ANSI colours; ``None`` (default) decides by ``file`` (stdout when not given): on
            only for a terminal and without ``NO_COLOR``.
        file: the stream the text is for (only used to decide ``color``).
        width: wrap lines to this many columns (default: the terminal's width, else 80).
        max_steps: show only the first steps.
    """
    color = use_color(file) if color is None else color
    width = shutil.get_terminal_size().columns if width is None else width
    lines = [f"{result.method} ({result.variant or 'default'}) on {result.model}", legend(color)]
    for step in range(result.n_steps if max_steps is None else min(max_steps, result.n_steps)):
        lines.append(render_step(result, step, color=color, width=width))
        cells = top_tokens(result, step)
        lines += _wrap("    top: ", [(c, text_width(c)) for c in cells], width, ", ", 2)
    return "\n".join(lines)
