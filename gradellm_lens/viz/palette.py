"""The one colour convention of every view: blue = positive, red = negative, white = 0.

A score's colour mixes white with :data:`POSITIVE` (scores > 0: evidence *for* the explained token)
or :data:`NEGATIVE` (scores < 0: evidence against it) in proportion to ``|score| / scale``, where
the scale is the largest ``|score|`` shown together. The end colours are those of ColorBrewer's
RdBu scheme (matplotlib's ``RdBu``), which stay blue and red when mixed with white (CircuitsVis's
own ``"blue"`` turns purple when mixed in CIELAB). Used by the terminal heatmap (a ramp of xterm
256 colours), the inline HTML heatmap, the CircuitsVis views (:mod:`.offline` passes these colours)
and the matplotlib figures (:func:`colormap`).
"""

from __future__ import annotations

import html
import math

from ..optional import require

POSITIVE = "#2166ac"
"""Colour of the largest positive score (supports the explained token)."""
NEGATIVE = "#b2182b"
"""Colour of the most negative score (speaks against the explained token)."""
ZERO = "#ffffff"

LEGEND = (
    "blue = positive (supports the explained token), red = negative (speaks against it), white = 0; "
    "darker = larger |score|"
)
"""The legend, in words."""

RGB = tuple[int, int, int]


def hex_rgb(colour: str) -> RGB:
    """``"#2166ac"`` -> ``(33, 102, 172)``."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def colour_of(value: float, scale: float) -> RGB:
    """The colour of ``value`` when ``scale`` (> 0) is the largest magnitude shown; NaN is white."""
    if not math.isfinite(value) or scale <= 0:
        return hex_rgb(ZERO)
    share = min(abs(value) / scale, 1.0)
    end = hex_rgb(POSITIVE if value >= 0 else NEGATIVE)
    return tuple(round(255 + (c - 255) * share) for c in end)  # type: ignore[return-value]


def css(rgb: RGB) -> str:
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def is_dark(rgb: RGB) -> bool:
    """Whether text on this background should be white (relative luminance below 0.4)."""
    r, g, b = (c / 255 for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.4


XTERM_POSITIVE = (231, 189, 153, 111, 68, 26, 25)
"""The palette in xterm's 256 colours: white to :data:`POSITIVE` (index 25) in seven levels."""
XTERM_NEGATIVE = (231, 224, 217, 210, 167, 160, 124)
"""White to :data:`NEGATIVE` (index 124) in seven levels."""


def xterm256(value: float, scale: float) -> tuple[int, bool]:
    """``(xterm colour index, dark)`` of ``value`` (as :func:`colour_of`); ``dark``: use white text."""
    if not math.isfinite(value) or scale <= 0:
        return XTERM_POSITIVE[0], False
    ramp = XTERM_POSITIVE if value >= 0 else XTERM_NEGATIVE
    level = min(len(ramp) - 1, round(abs(value) / scale * (len(ramp) - 1)))
    return ramp[level], level >= 4


def colormap(signed: bool):
    """A matplotlib colormap of the convention: red-white-blue (signed) or white-blue."""
    LinearSegmentedColormap = require("matplotlib.colors", "evaluation", "colormap").LinearSegmentedColormap
    stops = [NEGATIVE, ZERO, POSITIVE] if signed else [ZERO, POSITIVE]
    return LinearSegmentedColormap.from_list("gradellm_lens_signed" if signed else "gradellm_lens", stops, N=255)


def legend_html() -> str:
    """A one-line HTML legend with colour swatches (inline styles, no script)."""

    def swatch(colour: str) -> str:
        return (
            f'<span style="display:inline-block;width:0.9em;height:0.9em;background:{colour};'
            'border:1px solid #ccc;vertical-align:middle"></span>'
        )

    return (
        f'<div class="gl-legend" style="font-size:0.85em;color:#555;margin:2px 0">{swatch(POSITIVE)} positive '
        f"(supports the explained token) {swatch(NEGATIVE)} negative {swatch(ZERO)} 0 &mdash; "
        f"{html.escape('darker = larger |score|')}</div>"
    )
