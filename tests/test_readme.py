"""The README's quick start: its code runs on the default model and prints what the README shows.

Scores are compared by their tokens and order only (the rounded values may move in the last digit
between machines); the README's block must be regenerated when the default method changes.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path


README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _block(after: str, lang: str) -> str:
    start = README.index(f"```{lang}\n", README.index(after)) + len(lang) + 4
    return README[start : README.index("```", start)]


def _shape(text: str) -> list[str]:
    """The printed lines with every number removed: the tokens, their order and the notes."""
    return [re.sub(r"-?\d+\.\d+", "#", line).strip() for line in text.strip().splitlines() if line.strip()]


def test_the_quick_start_prints_what_the_readme_shows(smollm2):
    code = _block("## Quick start", "python")
    code = code.replace("gl.load_model()", "model")  # the session's SmolLM2 (the default model)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README quick start", "exec"), {"model": smollm2})
    assert _shape(out.getvalue()) == _shape(_block("prints (", "text"))


def test_the_quick_start_names_the_default_and_the_released_codes_variants():
    from gradellm_lens.methods.grad_ellm import VARIANTS, GradEllmOptions

    options = GradEllmOptions()
    assert (options.layers, options.combine) == ("all", "sum_then_relu")
    assert 'variant="last_layer"' in README and 'variant="reference"' in README
    assert VARIANTS["last_layer"] == {"layers": 1, "combine": "relu_then_sum"}
