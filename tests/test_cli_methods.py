"""The methods command: method docs as plain text."""

from __future__ import annotations

from helpers import run_cli

import gradellm_lens as gl


def test_methods_help_is_plain_text(capsys):
    for name in gl.list_methods():
        code, out, _ = run_cli(capsys, "methods", name)
        assert code == 0
        for markup in ("``", ":math:", ":class:", ".. math::", "\\", "{", "}"):
            assert markup not in out, (name, markup)
    _, out, _ = run_cli(capsys, "methods", "grad_ellm")
    assert "H_i = ReLU(Σ_ℓ Σ_h c^(ℓ,h)_i)" in out and "λ^ℓ_i = minmax_(i ≤ p) cos(q^ℓ_p, k^ℓ_i)" in out


def test_latex_text():
    from gradellm_lens.cli.methods import latex_text, plain_text

    assert latex_text(r"\frac{\partial y}{\partial x_{i}}") == "(∂y)/(∂x_i)"
    assert latex_text(r"\sqrt{\varepsilon} \cdot \operatorname{ReLU}(\bar{x})") == "√(ε) · ReLU(x̄)"
    assert plain_text("see :class:`~a.b.Target` and :func:`gradellm_lens.explain` on **x** with ``y``") == (
        "see Target and explain() on x with y"
    )
