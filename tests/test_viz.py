"""Views, offline pages, reports, figures and the explain CLI's report (no browser; see test_viz_browser.py)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gradellm_lens import InvalidInputError
from gradellm_lens.cli.main import main as cli_main
from gradellm_lens.result import AttributionResult
from gradellm_lens.tokens import decode_tokens, display_token
from gradellm_lens.viz import (
    View,
    colored_tokens,
    colored_tokens_multi,
    compare_methods,
    head_maps,
    layer_head_tokens,
    layer_maps,
    layer_tokens,
    plot_head_importance,
    plot_pi_curves,
    render,
    write_report,
    write_views,
)
from gradellm_lens.viz.offline import bundle_js, props_json
from gradellm_lens.viz.plots import figure_data_uri
from gradellm_lens.viz.views import finite

NAN = float("nan")
TOKENS = ("<s>", "a<b>c", "Ġcat", "</script>", "Ċ", "<|im_start|>")


@pytest.fixture
def synthetic() -> AttributionResult:
    """Six tokens with HTML-hostile strings, two steps (positions 3 and 4), 2 layers x 3 heads."""
    scores = torch.tensor([[0.5, 2.0, 0.0, 1.0, NAN, NAN], [0.1, 0.2, 0.3, 0.4, 1.0, NAN]])
    layer_head = torch.randn(2, 2, 3, 6)
    layer_head[0, :, :, 4:] = NAN
    layer_head[1, :, :, 5:] = NAN
    return AttributionResult(
        tokens=TOKENS, token_ids=torch.arange(6), prompt_length=4, scores=scores, step_positions=(3, 4),
        target_ids=(4, 5), target_logits=(1.5, 2.5), method="grad_ellm", model="synthetic",
        options={"layers": 2}, layer_head=layer_head, layers=(6, 7),
    )  # fmt: skip


def _flat(x) -> list[float]:
    return torch.as_tensor(x, dtype=torch.float64).flatten().tolist()


# ---- tokens ----------------------------------------------------------------------------------------
def test_display_token_undoes_markers_and_bytes():
    assert display_token("Ġcat") == " cat"
    assert display_token("▁the") == " the"
    assert display_token("Ã©") == "é"
    assert display_token("Ċ") == "\\n"
    assert display_token("<|im_start|>") == "<|im_start|>"
    assert decode_tokens(["C", "af", "Ã", "©", "Ċ", "Ġok"]) == "Café\n ok"  # é split across two tokens


# ---- views -----------------------------------------------------------------------------------------
def test_colored_tokens_escapes_html_and_cleans_values(synthetic):
    view = colored_tokens(synthetic, 0)
    assert view.component == "ColoredTokens"
    assert view.props["tokens"] == ["&lt;s&gt;", "a&lt;b&gt;c", " cat", "&lt;/script&gt;"]
    assert _flat(view.props["values"]) == [0.5, 2.0, 0.0, 1.0]
    assert (view.props["minValue"], view.props["maxValue"]) == (0.0, 2.0)
    assert view.title == "step 1: '\\n'"  # the explained token "Ċ", a newline, shown as \\n (once)


def test_finite_replaces_nan_and_inf():
    x = torch.tensor([1.0, float("inf"), NAN, float("-inf"), -2.0])
    assert _flat(finite(x)) == [1.0, 1.0, 0.0, -2.0, -2.0]
    assert _flat(finite(torch.tensor([NAN, NAN]))) == [0.0, 0.0]


def test_colored_tokens_multi_one_series_per_step(synthetic):
    view = colored_tokens_multi(synthetic)
    values = torch.as_tensor(view.props["values"])
    assert values.shape == (6, 2)  # [pos, step]
    assert torch.isfinite(values).all() and values[5, 1] == 0 and values[4, 0] == 0
    assert view.props["labels"] == ["1: '\\n'", "2: '<|im_start|>'"]


def test_layer_views_decompose_layer_head(synthetic):
    lh = synthetic.layer_head
    lh[0, 0, 0, 0] = float("inf")  # layer_head is not validated by AttributionResult; views clean it
    assert torch.isfinite(torch.as_tensor(layer_tokens(synthetic, 0).props["values"])).all()
    view = layer_tokens(synthetic, 1)
    values = torch.as_tensor(view.props["values"])  # [pos, 1 + layer]
    assert view.props["labels"] == ["score", "L6", "L7"]
    assert torch.allclose(values[:, 1:].T, lh[1, :, :, :5].sum(1))

    view = layer_head_tokens(synthetic)
    assert view.component == "TextNeuronActivations"
    assert [len(t) for t in view.props["tokens"]] == [4, 5]
    act = torch.as_tensor(view.props["activations"][1])  # [pos, layer, 1 + head]
    assert act.shape == (5, 2, 4)
    assert torch.allclose(act[:, :, 0], lh[1, :, :, :5].sum(1).T)  # "all heads" = sum over heads
    assert torch.allclose(act[:, 1, 3], lh[1, 1, 2, :5])
    assert view.props["secondDimensionLabels"] == ["all heads", "H0", "H1", "H2"]
    assert view.props["tokens"][0][0] == "&lt;s&gt;"


def test_attention_style_maps_put_steps_on_query_rows(synthetic):
    view = head_maps(synthetic, 7)
    attn = torch.as_tensor(view.props["attention"])  # [head, query, key]
    assert attn.shape == (3, 6, 6)
    assert view.props["attentionHeadNames"] == ["L7 H0", "L7 H1", "L7 H2"]
    assert view.props["tokens"][0] == "<s>"  # AttentionHeads draws text: not escaped
    assert torch.allclose(attn[:, 4, :5], synthetic.layer_head[1, 1, :, :5])
    assert attn[:, :3].abs().sum() == 0 and attn[:, 3, 4:].abs().sum() == 0
    lo, hi = view.props["minValue"], view.props["maxValue"]
    assert lo == -hi and hi == pytest.approx(float(attn.abs().max()))
    assert len(head_maps(synthetic).props["attentionHeadNames"]) == 6
    assert layer_maps(synthetic).props["attentionHeadNames"] == ["score", "L6", "L7"]
    with pytest.raises(InvalidInputError, match="Layer 3 was not attributed"):
        head_maps(synthetic, 3)


def test_compare_methods_scales_each_method(synthetic):
    other = synthetic.with_scores(synthetic.scores * 10, method="saliency", layer_head=None, layers=())
    view = compare_methods([synthetic, other], step=1)
    values = torch.as_tensor(view.props["values"])
    assert view.props["labels"] == ["grad_ellm", "saliency"]
    assert torch.allclose(values[:, 0], values[:, 1]) and float(values.max()) == 1.0
    shifted = replace(other, step_positions=(2, 4))
    with pytest.raises(InvalidInputError, match="different tokens or steps"):
        compare_methods([synthetic, shifted])


def test_view_errors(synthetic):
    with pytest.raises(InvalidInputError, match="NaN or infinity"):
        View("ColoredTokens", {"tokens": ["a"], "values": [NAN]})
    with pytest.raises(InvalidInputError, match="CircuitsVis component="):
        View("Bogus", {})
    with pytest.raises(InvalidInputError, match="out of range"):
        colored_tokens(synthetic, 5)
    no_decomposition = replace(synthetic, layer_head=None, layers=())
    with pytest.raises(InvalidInputError, match="no per-layer/per-head decomposition"):
        layer_tokens(no_decomposition)


def test_view_renders_offline(synthetic):
    view = colored_tokens(synthetic)
    src = str(view)
    assert "unpkg.com" not in src and "CircuitsVis.render(" in src and "var CircuitsVis=" in src
    assert "unpkg.com" in view.cdn_src  # CircuitsVis's online form is still available


def test_notebook_display_inlines_the_bundle_once_per_kernel(synthetic, monkeypatch):
    from gradellm_lens.viz import offline

    monkeypatch.setattr(offline, "_bundle_displayed", False)  # a fresh kernel
    first, second, third = (v._repr_html_() for v in (colored_tokens(synthetic), layer_maps(synthetic),
                                                       colored_tokens_multi(synthetic)))  # fmt: skip
    assert first.count("var CircuitsVis=") == 1
    for later in (second, third):
        assert "var CircuitsVis=" not in later and len(later) < 20_000
        assert "if (window.CircuitsVis)" in later and "CircuitsVis.render(" in later  # waits for the bundle
    assert all("gl-legend" in html for html in (first, second, third))


def test_props_json_cannot_close_the_script():
    text = props_json({"tokens": ["</script><script>alert(1)</script>"], "values": [1.0]})
    assert "<" not in text and ">" not in text
    assert json.loads(text)["tokens"] == ["</script><script>alert(1)</script>"]


# ---- pages and reports -----------------------------------------------------------------------------
def _scripts(page: str) -> list[str]:
    return re.findall(r"<script>(.*?)</script>", page, flags=re.S)


def test_write_views_inlines_the_bundle_once(synthetic, tmp_path):
    views = [colored_tokens(synthetic, 0), colored_tokens(synthetic, 1), layer_maps(synthetic)]
    path = write_views(views, tmp_path / "v.html")
    page = path.read_text(encoding="utf-8")
    scripts = _scripts(page)
    assert len(scripts) == 2 and scripts[0] == bundle_js()
    assert page.count("var CircuitsVis=") == 1
    assert scripts[1].count("CircuitsVis.render(") == 3 == page.count('class="cv-view')
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert "Content-Security-Policy" in page
    single = colored_tokens(synthetic).save(tmp_path / "one.html").read_text(encoding="utf-8")
    assert single.count("var CircuitsVis=") == 1 and single.count("CircuitsVis.render(") == 1
    assert "<title>step 1: &#x27;\\n&#x27;</title>" in single


def test_report_contents(synthetic, tmp_path):
    other = synthetic.with_scores(3 - synthetic.scores, method="saliency", layer_head=None, layers=())
    page = write_report([synthetic, other], tmp_path / "r.html", title="a <title>").read_text(encoding="utf-8")
    mounts = _scripts(page)[1]
    n_views = mounts.count("CircuitsVis.render(")
    assert n_views == page.count('class="cv-view')
    # side by side (2 methods x 2 steps), each method shown there only; decomposition: layer x head x
    # token, 2 layer series, and (2 steps fill >= 1/4 of 6 rows) layer maps + head maps of 2 layers
    assert n_views == 4 + 3 + 3
    assert "<h1>a &lt;title&gt;</h1>" in page and "Methods side by side" in page
    assert "NaN" not in mounts and "Infinity" not in mounts
    assert "data:image/png;base64," in page  # head importance figure
    assert "<code>2</code>" in page  # the option layers=2 is listed
    assert '<pre class="text">&lt;s&gt;a&lt;b&gt;c cat&lt;/script&gt;<span class="generated">\n' in page
    with pytest.raises(InvalidInputError, match="one or more AttributionResult"):
        write_report([], tmp_path / "empty.html")


def test_a_failed_report_leaves_the_existing_file_alone(synthetic, tmp_path, monkeypatch):
    from gradellm_lens.viz import offline

    path = tmp_path / "r.html"
    before = write_report(synthetic, path).read_bytes()
    with pytest.raises(InvalidInputError, match="is a folder"):
        write_report(synthetic, tmp_path)
    monkeypatch.setattr(offline.Page, "html", lambda self: "<p>\ud800</p>")  # a page that cannot be encoded
    with pytest.raises(UnicodeEncodeError):
        write_report(synthetic, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_report_of_tiny_model_runs(tiny_model, tmp_path):
    from gradellm_lens import explain

    a = explain(tiny_model, "the cat sat on the mat", max_new_tokens=4, layers="all")
    b = explain(tiny_model, "the cat sat on the mat", "saliency", continuation=a.token_ids[a.prompt_length :])
    page = write_report([a, b], tmp_path / "r.html").read_text(encoding="utf-8")
    assert a.n_steps >= 3 and len(a.layers) == 2
    assert page.count("CircuitsVis.AttentionHeads") == 1 + 2  # the steps fill >= 1/4 of the rows
    assert page.count("CircuitsVis.ColoredTokens,") == 2 * a.n_steps  # side by side, each method once
    assert "sat" in render(a, color=False)


def test_explain_cli_writes_report(tmp_path, capsys):
    out = tmp_path / "report.html"
    code = cli_main([
        "explain", "the cat sat on the mat", "--model", "tiny-llama", "--max-new-tokens", "2",
        "--methods", "grad_ellm,grad_ellm:pattern,saliency", "-O", "layers=all", "--out", str(out),
        "--save", str(tmp_path / "r.npz"), "--no-color",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "saliency has no option(s) layers" in printed
    page = out.read_text(encoding="utf-8")
    assert "Methods side by side" in page and "grad_ellm (pattern)" in page
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == [
        "r.grad_ellm-pattern.npz", "r.grad_ellm.npz", "r.saliency.npz",
    ]  # fmt: skip


def _repeated() -> AttributionResult:
    """A newline token, a token that occurs twice with the same score, and signed per-head values."""
    tokens = ("<s>", "Ġa", "Ċ", "Ġa", "Ġcat", "Ċ")
    scores = torch.tensor([[0.1, 0.9, 0.8, 0.9, 0.2, NAN], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    layer_head = torch.tensor([1.0, -1.0])[None, :, None, None].expand(2, 2, 1, 6).clone()
    return AttributionResult(
        tokens=tokens, token_ids=torch.arange(6), prompt_length=5, scores=scores, step_positions=(4, 5),
        target_ids=(5, 2), target_logits=(1.0, 2.0), method="grad_ellm", model="synthetic", layer_head=layer_head,
        layers=(0, 1), target_tokens=("Ċ", "Ċ"),
    )  # fmt: skip


def test_top_tokens_are_quoted_once_and_carry_their_position(tmp_path):
    from gradellm_lens.viz.views import top_tokens

    result = _repeated()
    assert top_tokens(result, 0, 3) == ["' a'@1 0.900", "' a'@3 0.900", "'\\n'@2 0.800"]  # '\n', not '\\n'
    text = render(result, color=False)
    assert "top: ' a'@1 0.900, ' a'@3 0.900, '\\n'@2 0.800" in text and "\\\\n" not in text
    assert result.explained(0) == "'\\n'" and "step 1/2 -> '\\n':" in text
    page = write_report(result, tmp_path / "r.html").read_text(encoding="utf-8")
    body = page.split("</head>")[1].split("<script>")[0]
    assert "&#x27; a&#x27;@1 0.900, &#x27; a&#x27;@3 0.900" in body and "\\\\n" not in body


def test_a_single_result_is_shown_once_with_notes_on_bounds_and_signed_heads(tmp_path):
    result = _repeated()
    page = write_report(result, tmp_path / "r.html").read_text(encoding="utf-8")
    body = page.split("</head>")[1]
    multi = body.index('class="cv-view cv-ColoredTokensMulti"')
    folded = body.index("<details><summary>Each step on its own (2 views)</summary>")
    assert multi < body.index("Positive Bound and Negative Bound boxes") < folded  # explained under the view
    assert body[:folded].count('class="cv-view cv-ColoredTokens"') == 0  # per-step heatmaps only folded
    assert ".cv-ColoredTokensMulti > div { padding-bottom: 0 !important; }" in page  # no blank gap below it
    assert "each head&#x27;s contribution before the ReLU" in body and "shows red here" in body
    positive = replace(result, layer_head=result.layer_head.abs())
    assert "before the ReLU" not in write_report(positive, tmp_path / "p.html").read_text(encoding="utf-8")


# ---- one colour convention --------------------------------------------------------------------------
def test_one_colour_convention_everywhere(synthetic, tmp_path):
    from matplotlib.colors import to_hex

    from gradellm_lens.analysis import HeadImportance
    from gradellm_lens.viz import palette
    from gradellm_lens.viz.offline import _DEFAULT_COLOURS

    # palette: positive -> blue end, negative -> red end, 0 -> white
    assert palette.colour_of(1.0, 1.0) == palette.hex_rgb(palette.POSITIVE)
    assert palette.colour_of(-2.0, 2.0) == palette.hex_rgb(palette.NEGATIVE)
    assert palette.colour_of(0.0, 1.0) == (255, 255, 255)
    # CircuitsVis: components that take colour props get them; the bundle's defaults are the same colours
    for view in (colored_tokens(synthetic), layer_maps(synthetic), head_maps(synthetic)):
        assert (view.props["positiveColor"], view.props["negativeColor"]) == (palette.POSITIVE, palette.NEGATIVE)
    raw = (Path(__import__("circuitsvis").__file__).parent / "dist" / "cdn" / "iife.js").read_text(encoding="utf-8")
    assert len(_DEFAULT_COLOURS.findall(raw)) == 1  # the installed bundle has the colour function we recolour
    assert _DEFAULT_COLOURS.search(bundle_js()) is None
    assert f'n="{palette.NEGATIVE}",o="{palette.POSITIVE}"' in bundle_js()
    # figures: the same end colours
    signed = plot_head_importance(HeadImportance(torch.tensor([[1.0, -2.0]]), (3,), "net"))
    cmap = signed.axes[0].get_images()[0].get_cmap()
    assert (to_hex(cmap(0.0)), to_hex(cmap(0.5)), to_hex(cmap(1.0))) == (palette.NEGATIVE, "#ffffff", palette.POSITIVE)
    # terminal: blue ramp for positive, red ramp for negative, ending at the palette's xterm colours
    assert palette.xterm256(1.0, 1.0)[0] == 25 and palette.xterm256(-1.0, 1.0)[0] == 124
    # legends: terminal, inline HTML, views, pages and reports
    assert "positive" in render(synthetic, color=True) and "negative" in render(synthetic, color=True)
    assert "gl-legend" in synthetic._repr_html_() and "gl-legend" in str(colored_tokens(synthetic))
    page = write_report(synthetic, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "gl-legend" in page and "blue = positive (supports the explained token), red = negative" in page


# ---- terminal ----------------------------------------------------------------------------------------
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _long_result() -> AttributionResult:
    words = ["Ġsupercalifragilistic", "Ġis", "Ġa", "Ġword", "▁中文字符", "Ġand"] * 6 + ["Ġend"]
    n = len(words)
    scores = torch.linspace(-1.0, 1.0, n)[None]
    return AttributionResult(
        tokens=tuple(words), token_ids=torch.arange(n), prompt_length=n - 1, scores=scores, step_positions=(n - 1,),
        target_ids=(3,), target_logits=(1.0,), method="saliency", model="synthetic", target_tokens=("Ġnext",),
    )  # fmt: skip


@pytest.mark.parametrize("color", [False, True])
def test_terminal_heatmap_wraps_between_tokens_at_80_columns(color):
    from gradellm_lens.viz.terminal import text_width

    result = _long_result()
    text = render(result, color=color, width=80)
    lines = [ANSI.sub("", line) for line in text.splitlines()]
    assert all(text_width(line) <= 80 for line in lines), [text_width(line) for line in lines]
    start = next(i for i, line in enumerate(lines) if line.startswith("step "))
    heat = lines[start : next(i for i, line in enumerate(lines) if line.startswith("    top:"))]
    assert len(heat) > 3  # wrapped
    cells = "".join(heat).split(": ", 1)[1].replace("    ", "").split("|")
    shown = [display_token(t) + ("" if color else f"[{float(s):.2f}]") for t, s in zip(result.tokens, result.scores[0])]
    assert cells == shown  # every token (and score) whole, in order, one boundary mark between each pair


def test_render_emits_ansi_only_for_a_terminal(synthetic, capsys, monkeypatch):
    class Terminal:
        def isatty(self) -> bool:
            return True

    assert "\x1b[" not in render(synthetic)  # stdout is captured: not a terminal
    assert "\x1b[" in render(synthetic, file=Terminal())
    assert "\x1b[" in render(synthetic, color=True) and "\x1b[" not in render(synthetic, color=False, file=Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in render(synthetic, file=Terminal())
    synthetic.show()
    assert "\x1b[" not in capsys.readouterr().out


def test_report_names_the_contrast_and_its_column(tiny_model, tmp_path):
    from gradellm_lens import explain

    result = explain(tiny_model, "the movie was", target=" good", contrast=" bad")
    page = write_report(result, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<th>logit(target) - logit(contrast)</th>" in page and "<th>target logit</th>" not in page
    assert "&#x27;good&#x27; vs &#x27;bad&#x27;" in page and "&lt;id" not in page
    assert "step 1/1 -> 'good' vs 'bad'" in render(result, color=False)
    assert colored_tokens(result).title == "step 1: 'good' vs 'bad'"


# ---- figures --------------------------------------------------------------------------------------
def test_plot_pi_curves(tmp_path):
    pis = [0.1, 0.5, 0.9]
    curves = {"grad_ellm": (pis, [0.2, 0.5, 0.8], [0.7, NAN, 0.1]), "random": (pis, [0.1, 0.3, 0.6], [0.5, 0.3, 0.1])}
    fig = plot_pi_curves(curves, path=tmp_path / "pi.png")
    assert (tmp_path / "pi.png").stat().st_size > 0
    ns, nc = fig.axes[:2]
    assert [line.get_label() for line in ns.get_lines()] == ["grad_ellm", "random"]
    assert list(nc.get_lines()[0].get_xdata()) == [0.1, 0.9]  # NaN point skipped
    with pytest.raises(InvalidInputError, match="equal length"):
        plot_pi_curves({"x": ([0.1, 0.2], [0.1], [0.2, 0.3])})
    band = ([0.0, 0.4, 0.7], [0.4, 0.6, 0.9])
    fig = plot_pi_curves(curves, intervals={"random": (band, band)}, title="SST-2")
    assert fig._suptitle.get_text() == "SST-2" and len(fig.axes[0].collections) == 1  # one shaded band


def test_plot_head_importance(synthetic):
    from gradellm_lens.analysis import HeadImportance

    fig = plot_head_importance(synthetic, step=1)
    image = fig.axes[0].get_images()[0]
    expected = synthetic.layer_head[1].nan_to_num(0).clamp(min=0).sum(-1)
    assert torch.allclose(torch.as_tensor(image.get_array().data), expected)
    signed = plot_head_importance(HeadImportance(torch.tensor([[1.0, -2.0]]), (3,), "net"))
    assert signed.axes[0].get_images()[0].get_clim() == (-2.0, 2.0)
    assert figure_data_uri(signed).startswith("data:image/png;base64,")
