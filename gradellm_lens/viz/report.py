"""Self-contained HTML reports: ``write_report(results, path)``.

One page, no network requests (see :mod:`.offline`: the CircuitsVis bundle is inlined once, a
Content-Security-Policy forbids fetches, figures are ``data:`` PNGs). With ``head_truth`` and
``head_scorers`` the page opens with the side-by-side layer x head view of a ground truth (e.g.
activation patching) and head scorers (:func:`~.plots.plot_head_comparison`). For each example (results
with the same tokens and steps are grouped) the page shows:

- the prompt and the generated / explained text;
- with several results: the methods side by side, one row per method for every step;
- per result: the method, variant and options used, a table of the steps (explained token, or
  ``target vs contrast``; position; the explained value, named for what it holds, e.g.
  ``logit(target) - logit(contrast)``; top tokens as ``'token'@position score``); without a
  side-by-side comparison, every step at once (``ColoredTokensMulti``, with a note on its bound
  boxes) and, folded, one heatmap per step (``ColoredTokens``), so each result is shown once;
- for results with a Grad-ELLM decomposition (``layer_head``): the [layer, head] importance
  figure; a note that these per-head values are taken before the ReLU (so they can be negative
  for a method whose scores are not); the layer x head x token view (pick a layer and a head, one
  box per step); with several layers, per step the layer x token series (folded); and, when the
  generated steps fill at least a quarter of the query rows, the per-layer and per-head query x key
  maps (``AttentionHeads``; with a long prompt and few steps they would be almost empty).

The layout of each view is documented in :mod:`.views`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError, MissingPackageError
from ..result import AttributionResult
from ..tokens import decode_tokens
from . import palette, views
from .offline import Page

if TYPE_CHECKING:
    from ..analysis import HeadImportance

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1100px;
       padding: 0 16px; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
h3 { margin-top: 26px; } h4.cv-title { margin: 14px 0 2px; font-weight: 600; color: #444; }
pre.text { white-space: pre-wrap; background: #f6f6f6; padding: 10px; border-radius: 4px; }
pre.text .generated { background: #dbeafe; }
table.kv, table.steps, table.side { border-collapse: collapse; margin: 8px 0; }
table.kv td, table.steps td, table.steps th, table.side td { border: 1px solid #ddd; padding: 3px 8px;
       vertical-align: top; }
table.side td.label { white-space: nowrap; font-weight: 600; }
.note { color: #666; font-size: 0.9em; }
.cv-view { margin: 4px 0 12px; } .cv-AttentionHeads { max-width: 760px; }
.cv-ColoredTokensMulti > div { padding-bottom: 0 !important; }  /* CircuitsVis pads 20px per series */
img.figure { max-width: 100%; }
"""

QUERY_KEY_MIN_FILL = 0.25
"""Query x key maps (``AttentionHeads``) are shown when the steps fill at least this share of rows."""

LAYER_HEAD_NOTE = (
    "The layer and head views show each head's contribution before the ReLU: Grad-ELLM's score of a token is "
    "the sum over layers of ReLU(sum over the layer's heads), which is never negative, but a single head or "
    "layer can count against the explained token, and that shows red here."
)

LEGEND = (
    f"Colours, the same in every view, the head importance figure and the terminal: {palette.LEGEND}. "
    "Hover a token for its value. In the query x key maps, row p is the step whose logits at "
    "position p are explained; click a thumbnail to lock it."
)


def _kv_table(rows: dict[str, object]) -> str:
    cells = "".join(
        f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(v if isinstance(v, str) else json.dumps(v, default=str))}"
        "</code></td></tr>"
        for k, v in rows.items()
    )
    return f'<table class="kv">{cells}</table>'


def _text_block(r: AttributionResult) -> str:
    prompt = html.escape(decode_tokens(r.tokens[: r.prompt_length]))
    generated = r.tokens[r.prompt_length :]
    gen_html = f'<span class="generated">{html.escape(decode_tokens(generated))}</span>' if generated else ""
    explained = ""
    if not generated:
        targets = ", ".join(r.explained(t) for t in range(r.n_steps))
        explained = f"<p>Explained token after the prompt: <b>{html.escape(targets)}</b></p>"
    return f'<h3>Text</h3><pre class="text">{prompt}{gen_html}</pre>{explained}'


def value_column(r: AttributionResult) -> str:
    """What ``target_logits`` holds: ``"logit"``, or ``"logit(target) - logit(contrast)"`` with a contrast."""
    if all(c is None for c in r.contrast_ids):
        return f"target {r.objective}"
    return f"{r.objective}(target) - {r.objective}(contrast)"


def _steps_table(r: AttributionResult, top_k: int = 3) -> str:
    columns = ("step", "explains", "position", value_column(r), "top tokens (token@position score)")
    rows = ["<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"]
    for t in range(r.n_steps):
        tops = ", ".join(views.top_tokens(r, t, top_k))
        rows.append(
            f"<tr><td>{t + 1}</td><td><code>{html.escape(r.explained(t))}</code></td><td>{r.step_positions[t]}</td>"
            f"<td>{r.target_logits[t]:.3f}</td><td>{html.escape(tops)}</td></tr>"
        )
    return f'<table class="steps">{"".join(rows)}</table>'


def _group_by_example(results: list[AttributionResult]) -> list[list[AttributionResult]]:
    groups: dict[tuple, list[AttributionResult]] = {}
    for r in results:
        groups.setdefault((tuple(r.token_ids.tolist()), r.step_positions), []).append(r)
    return list(groups.values())


def _side_by_side(page: Page, group: list[AttributionResult]) -> None:
    page.add("<h3>Methods side by side</h3>")
    page.add('<p class="note">Each row has its own colour scale (the methods\' scores have different units).</p>')
    for t in range(group[0].n_steps):
        page.add(f"<h4>step {html.escape(views.step_label(group[0], t))}</h4><table class='side'>")
        for r in group:
            page.add(f"<tr><td class='label'>{html.escape(views.method_label(r))}</td><td>")
            page.add_view(replace(views.colored_tokens(r, t), title=""))
            page.add("</td></tr>")
        page.add("</table>")


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _result_section(page: Page, r: AttributionResult, side_by_side: bool) -> None:
    """Options, steps table and the token views of one result (each shown once: with ``side_by_side``,
    the rows above already show every step of it), then its layer/head decomposition."""
    page.add(f"<h3>{html.escape(views.method_label(r))}</h3>")
    options = {"method": r.method, "variant": r.variant or "default", "objective": r.objective, **r.options}
    if r.layers:
        options["attributed layers"] = list(r.layers)
    page.add(_kv_table(options))
    page.add(_steps_table(r))
    if not side_by_side and r.n_steps == 1:
        page.add_view(views.colored_tokens(r, 0))
    elif not side_by_side:
        page.add_view(views.colored_tokens_multi(r))
        page.add(_note(views.BOUNDS_NOTE))
        page.add(f"<details><summary>Each step on its own ({r.n_steps} views)</summary>")
        for t in range(r.n_steps):
            page.add_view(views.colored_tokens(r, t))
        page.add("</details>")
    if r.layer_head is None:
        return
    page.add("<h4>Layers and heads</h4>")
    if bool((views.finite(r.layer_head) < 0).any()):
        page.add(_note(LAYER_HEAD_NOTE))
    try:
        from .plots import figure_data_uri, plot_head_importance  # matplotlib: an optional package

        fig = plot_head_importance(r)
        page.add(f'<img class="figure" alt="layer x head importance" src="{figure_data_uri(fig)}">')
    except (InvalidInputError, MissingPackageError) as exc:  # e.g. post_o maps, whose "heads" are not attention heads
        page.add(f'<p class="note">No head importance figure: {html.escape(str(exc))}</p>')
    page.add_view(views.layer_head_tokens(r))
    if len(r.layers) > 1:
        page.add(f"<details><summary>Each layer's map per step ({r.n_steps} views)</summary>")
        page.add(_note(views.BOUNDS_NOTE))
        for t in range(r.n_steps):
            page.add_view(views.layer_tokens(r, t))
        page.add("</details>")
    if r.n_steps >= QUERY_KEY_MIN_FILL * len(r.tokens):
        page.add_view(views.layer_maps(r))
        for layer in r.layers:
            page.add_view(views.head_maps(r, layer))


def _head_comparison_section(page: Page, truth: HeadImportance, scorers: Mapping[str, HeadImportance]) -> None:
    page.add("<h2>Heads: ground truth and scorers</h2>")
    page.add(
        f'<p class="note">Ground truth: {html.escape(truth.measure)}; each panel has its own colour scale; '
        "the truth's top heads are outlined in every panel.</p>"
    )
    from .plots import figure_data_uri, plot_head_comparison  # matplotlib: an optional package

    fig = plot_head_comparison(truth, scorers)
    page.add(f'<img class="figure" alt="layer x head: ground truth and scorers" src="{figure_data_uri(fig)}">')


def write_report(
    results: AttributionResult | Sequence[AttributionResult],
    path: str | Path,
    title: str = "gradellm-lens report",
    *,
    head_truth: HeadImportance | None = None,
    head_scorers: Mapping[str, HeadImportance] | None = None,
    full_prompt: bool = False,
) -> Path:
    """Write one self-contained HTML page (no network requests) for one or several results.

    Args:
        results: one result, or several (e.g. several methods on the same prompt: shown side by
            side; results of different prompts get their own sections); may be empty with a head comparison.
        path: output file (``.html``).
        title: page title and heading.
        head_truth, head_scorers: a ground-truth head importance (e.g. activation patching's) and
            ``{name: HeadImportance}`` scorers, shown first as the side-by-side layer x head view
            (:func:`~.plots.plot_head_comparison`).
        full_prompt: show every prompt token; by default only the user's text and the generated
            tokens (:meth:`AttributionResult.user_view`), with a note saying how many are hidden.

    Returns:
        The path written.
    """
    results = [results] if isinstance(results, AttributionResult) else list(results)
    if (head_truth is None) != (not head_scorers):
        raise InvalidInputError("A head comparison needs both head_truth and head_scorers.")
    if (not results and head_truth is None) or not all(isinstance(r, AttributionResult) for r in results):
        raise InvalidInputError("write_report needs one or more AttributionResult objects (or a head comparison).")
    page = Page(title, STYLE)
    page.add(f"<h1>{html.escape(title)}</h1>")
    models = sorted({r.model for r in results})
    if models:
        page.add(f'<p class="note">model: {html.escape(", ".join(models))}. {html.escape(LEGEND)}</p>')
    page.add(palette.legend_html())
    if head_truth is not None:
        _head_comparison_section(page, head_truth, head_scorers)
    groups = _group_by_example(results)
    for i, group in enumerate(groups):
        if len(groups) > 1:
            page.add(f"<h2>Example {i + 1}</h2>")
        shown = [r.displayed(full_prompt) for r in group]
        group, note = [r for r, _ in shown], shown[0][1]
        page.add(_text_block(group[0]))
        if note:
            page.add(_note(note.replace("full_prompt=True", "full_prompt=True (--full-prompt)")))
        if len(group) > 1:
            _side_by_side(page, group)
        for r in group:
            _result_section(page, r, side_by_side=len(group) > 1)
    versions = results[0].versions if results else None
    if versions:
        page.add(f'<p class="note">versions: {html.escape(", ".join(f"{k} {v}" for k, v in versions.items()))}</p>')
    return page.write(path)
