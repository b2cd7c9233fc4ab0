"""CircuitsVis views of attribution results (each returns a :class:`~.offline.View`).

Token scores
    :func:`colored_tokens` -- one step: the prefix coloured by its scores (``ColoredTokens``).
    :func:`colored_tokens_multi` -- every step at once: one selectable series per generated token
    (``ColoredTokensMulti``; positions after a step's prefix show 0).

Grad-ELLM decomposition
    (``result.layer_head[step, layer, head, pos]``, the per-head contributions :math:`c^{\\ell,h}_i`
    before any ReLU.)
    :func:`layer_head_tokens` -- every step, with a layer and a head selector ("all heads" is the
    layer's map :math:`\\sum_h c^{\\ell,h}_i`): one box of coloured tokens per step
    (``TextNeuronActivations``). The main per-layer / per-head view.
    :func:`layer_tokens` -- one step: one series per layer plus the final score; hovering a
    token lists every layer's value (``ColoredTokensMulti``).
    :func:`layer_maps` / :func:`head_maps` -- every step at once as attention-style heatmaps
    (``AttentionHeads``: one thumbnail per layer or head, hover/click to zoom). Grad-ELLM is a
    gradient-weighted attention map from the query position :math:`p` of a step to every key
    :math:`i \\le p`, so each map is drawn as a [query x key] pattern: row :math:`p` holds the step
    whose logits at position :math:`p` are explained (it predicts token :math:`p+1`); rows of
    prompt positions are empty and the causal upper triangle is grey, so these read well for long
    generations and poorly for a long prompt with a few steps.

Comparison
    :func:`compare_methods` -- several methods on the same example and step, one series per
    method, each divided by its own largest absolute score so the colours are comparable.

Colours follow :mod:`.palette` in every view: blue for positive (supports the explained token),
red for negative, white 0, darker for larger magnitudes. Non-negative scores use the scale
[0, max]; signed ones [-max|v|, max|v|]. NaN/inf never reach a
view: NaN (positions outside a prefix) becomes 0, infinities the largest finite value. Tokens are
shown with :func:`~gradellm_lens.tokens.display_token` and HTML-escaped for the components that insert them
as HTML (``ColoredTokens*``, ``TextNeuronActivations``), so ``<s>`` and ``<|im_start|>`` show
literally (their hover tooltips, drawn as text, show the escaped form); the ``AttentionHeads``
axis labels are drawn as text and are not escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import InvalidInputError
from ..result import AttributionResult
from ..tokens import display_token, quote_token
from . import palette
from .offline import HTML_TEXT_COMPONENTS, Component, View

# ---- helpers -------------------------------------------------------------------------------------
COLOURS = {"positiveColor": palette.POSITIVE, "negativeColor": palette.NEGATIVE}
"""Colour props of the components that take them (the others get the same colours from the bundle)."""


def finite(x: Tensor) -> Tensor:
    """``x`` as float32 with NaN -> 0 and +-inf -> the largest / smallest finite value."""
    x = x.detach().float().cpu()
    ok = torch.isfinite(x)
    hi = float(x[ok].max()) if ok.any() else 0.0
    lo = float(x[ok].min()) if ok.any() else 0.0
    return torch.nan_to_num(x, nan=0.0, posinf=hi, neginf=lo)


def value_range(x: Tensor) -> tuple[float, float]:
    """Colour scale: [0, max] for non-negative values, symmetric [-m, m] for signed ones (never empty)."""
    lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    if lo >= 0:
        return 0.0, hi if hi > 0 else 1.0
    m = max(abs(lo), abs(hi))
    return -m, m


def token_labels(tokens: Sequence[str], component: Component) -> list[str]:
    """Display form of ``tokens``, HTML-escaped for components that render tokens as HTML."""
    shown = [display_token(t) for t in tokens]
    return [html.escape(t, quote=False) for t in shown] if component in HTML_TEXT_COMPONENTS else shown


def top_tokens(result: AttributionResult, step: int, k: int = 5) -> list[str]:
    """The ``k`` highest-scoring tokens of a step's prefix as ``"' a'@12 0.550"``: the quoted token, its
    position in the full sequence (repeated tokens are told apart; a :meth:`~AttributionResult.user_view`
    keeps the positions it shows) and its score."""
    scores = finite(result.step_scores(step))
    top = scores.argsort(descending=True, stable=True)[:k].tolist()
    positions = result.diagnostics.get("shown_positions") or range(len(result.tokens))
    return [f"{quote_token(result.tokens[i])}@{positions[i]} {float(scores[i]):.3f}" for i in top]


BOUNDS_NOTE = (
    "The Positive Bound and Negative Bound boxes set the scores drawn in the darkest blue and the darkest "
    "red (default: the selected series' largest and smallest value); lower them to see small scores."
)
"""What the two number boxes of the ``ColoredTokensMulti`` views do (CircuitsVis does not say)."""


def step_label(result: AttributionResult, step: int) -> str:
    """``"2: ' Paris'"`` -- the step number (1-based) and what it explains (``' a' vs ' b'`` with a contrast)."""
    return f"{step + 1}: {result.explained(step)}"


def _check_step(result: AttributionResult, step: int) -> int:
    if not -result.n_steps <= step < result.n_steps:
        raise InvalidInputError(f"step {step} is out of range: the result has {result.n_steps} step(s).")
    return step % result.n_steps


def _layer_head(result: AttributionResult) -> Tensor:
    if result.layer_head is None:
        raise InvalidInputError(
            f"The {result.method!r} result has no per-layer/per-head decomposition (layer_head); "
            "use method='grad_ellm' for layer and head views."
        )
    return result.layer_head


def _layer_row(result: AttributionResult, layer: int) -> int:
    """Row of ``layer_head`` for model layer ``layer`` (negative counts from the last selected layer)."""
    if -len(result.layers) <= layer < 0:
        return len(result.layers) + layer
    if layer in result.layers:
        return result.layers.index(layer)
    raise InvalidInputError(f"Layer {layer} was not attributed; this result covers layers {list(result.layers)}.")


def _multi(tokens: Sequence[str], series: Tensor, labels: list[str], title: str) -> View:
    """``ColoredTokensMulti`` of ``series`` [K, pos] (cleaned) with one label per series."""
    return View(
        "ColoredTokensMulti",
        {"tokens": token_labels(tokens, "ColoredTokensMulti"), "values": finite(series).T, "labels": labels},
        title,
    )


def _step_rows(result: AttributionResult, maps: Tensor) -> Tensor:
    """[step, K, pos] maps -> [K, pos, pos] attention-style matrices with row ``step_positions[t]`` = step t.

    Steps sharing a position (several targets at one position) share a row: the last one is shown.
    """
    n = len(result.tokens)
    out = torch.zeros(maps.shape[1], n, n)
    out[:, list(result.step_positions), :] = finite(maps).transpose(0, 1)
    return out


def _heads_view(result: AttributionResult, maps: Tensor, names: list[str], title: str) -> View:
    matrices = _step_rows(result, maps)
    lo, hi = value_range(matrices)
    return View(
        "AttentionHeads",
        {
            "attention": matrices,
            "tokens": token_labels(result.tokens, "AttentionHeads"),
            "attentionHeadNames": names,
            "minValue": lo,
            "maxValue": hi,
            "maskUpperTri": True,
            **COLOURS,
        },
        title,
    )


# ---- token scores ----------------------------------------------------------------------------------
def colored_tokens(result: AttributionResult, step: int = 0) -> View:
    """The prefix of ``step`` coloured by its token scores."""
    step = _check_step(result, step)
    values = finite(result.step_scores(step))
    lo, hi = value_range(values)
    prefix = result.tokens[: values.shape[0]]
    return View(
        "ColoredTokens",
        {"tokens": token_labels(prefix, "ColoredTokens"), "values": values, "minValue": lo, "maxValue": hi, **COLOURS},
        f"step {step_label(result, step)}",
    )


def colored_tokens_multi(result: AttributionResult) -> View:
    """All tokens with one selectable series per step (0 outside each step's prefix)."""
    labels = [step_label(result, t) for t in range(result.n_steps)]
    return _multi(result.tokens, result.scores, labels, f"{result.method}: all {result.n_steps} steps")


# ---- Grad-ELLM decomposition -------------------------------------------------------------------------
def layer_tokens(result: AttributionResult, step: int = 0) -> View:
    """One step: the final score and each layer's map (sum over heads, before ReLU), as series."""
    step = _check_step(result, step)
    lh = _layer_head(result)[step]
    n = result.step_positions[step] + 1
    series = torch.cat([result.scores[step, None, :n], lh.sum(1)[:, :n]])
    labels = ["score"] + [f"L{layer}" for layer in result.layers]
    return _multi(result.tokens[:n], series, labels, f"layers x tokens, step {step_label(result, step)}")


def layer_head_tokens(result: AttributionResult) -> View:
    """Every step, any layer and head: pick a layer and a head (or "all heads"), one box per step.

    ``TextNeuronActivations`` with steps as samples (each its own prefix), layers as the first
    dimension and ``["all heads", "H0", "H1", ...]`` as the second: "all heads" is the layer's
    map before its ReLU (the sum over heads). One colour scale for the whole view.
    """
    lh = _layer_head(result)
    samples, tokens = [], []
    for t in range(result.n_steps):
        n = result.step_positions[t] + 1
        per_head = lh[t, :, :, :n]  # [layer, head, pos]
        stacked = torch.cat([per_head.sum(1, keepdim=True), per_head], dim=1)  # [layer, 1 + head, pos]
        samples.append(finite(stacked).permute(2, 0, 1))  # [pos, layer, 1 + head]
        tokens.append(token_labels(result.tokens[:n], "TextNeuronActivations"))
    return View(
        "TextNeuronActivations",
        {
            "tokens": tokens,
            "activations": samples,
            "firstDimensionName": "Layer",
            "secondDimensionName": "Head",
            "firstDimensionLabels": [f"L{layer}" for layer in result.layers],
            "secondDimensionLabels": ["all heads"] + [f"H{h}" for h in range(lh.shape[2])],
        },
        f"layer x head x token, one box per step ({', '.join(step_label(result, t) for t in range(result.n_steps))})",
    )


def layer_maps(result: AttributionResult) -> View:
    """Every step: the final score map and each layer's map (sum over heads), attention-style."""
    lh = _layer_head(result)
    maps = torch.cat([result.scores[:, None, :], lh.sum(2)], dim=1)
    names = ["score"] + [f"L{layer}" for layer in result.layers]
    return _heads_view(result, maps, names, "layers: query (step) x key token")


def head_maps(result: AttributionResult, layers: int | Sequence[int] | None = None) -> View:
    """Every step: each head's map, attention-style, for ``layers`` (model indices; default all attributed)."""
    lh = _layer_head(result)
    chosen = list(result.layers) if layers is None else [layers] if isinstance(layers, int) else list(layers)
    rows = [_layer_row(result, layer) for layer in chosen]
    maps = lh[:, rows].flatten(1, 2)
    names = [f"L{result.layers[r]} H{h}" for r in rows for h in range(lh.shape[2])]
    where = ", ".join(f"L{result.layers[r]}" for r in rows)
    return _heads_view(result, maps, names, f"heads of {where}: query (step) x key token")


# ---- comparison ------------------------------------------------------------------------------------
def method_label(result: AttributionResult) -> str:
    """``"grad_ellm (reference)"`` or just the method name."""
    return f"{result.method} ({result.variant})" if result.variant and result.variant != "default" else result.method


def check_same_example(results: Sequence[AttributionResult]) -> None:
    """Raise unless all results explain the same tokens at the same steps."""
    if not results:
        raise InvalidInputError("Pass at least one result.")
    first = results[0]
    for r in results[1:]:
        if not torch.equal(r.token_ids, first.token_ids) or r.step_positions != first.step_positions:
            raise InvalidInputError(
                f"{method_label(r)} and {method_label(first)} explain different tokens or steps; "
                "compare results of the same prompt and continuation (e.g. explain(..., continuation=...))."
            )


def compare_methods(results: Sequence[AttributionResult], step: int = 0) -> View:
    """Several methods on one example: one series per method at ``step``, each scaled to ``max |score| = 1``."""
    results = list(results)
    check_same_example(results)
    step = _check_step(results[0], step)
    rows = []
    for r in results:
        s = finite(r.step_scores(step))
        scale = float(s.abs().max())
        rows.append(s / scale if scale > 0 else s)
    n = rows[0].shape[0]
    labels = [method_label(r) for r in results]
    return _multi(results[0].tokens[:n], torch.stack(rows), labels, f"methods, step {step_label(results[0], step)}")
