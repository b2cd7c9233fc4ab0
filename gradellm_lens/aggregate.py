r"""Post-processing of attribution results: per-step normalisation, word merging, span selection.

Every function takes an :class:`~gradellm_lens.result.AttributionResult` (returning a new one; the
steps applied are appended to ``options["aggregation"]``) or a plain ``[..., pos]`` score tensor.
NaN marks positions a step does not cover; it is ignored by every reduction and preserved.

Normalisation (:func:`normalise`), per step over the non-NaN positions:

========== ===============================================================
``sum``    :math:`s_i / \sum_j s_j` (sums to 1)
``l1``     :math:`s_i / \sum_j |s_j|` (same as ``sum`` for non-negative scores)
``max``    :math:`s_i / \max_j |s_j|`
``minmax`` :math:`(s_i - \min_j s_j) / (\max_j s_j - \min_j s_j)`
========== ===============================================================

A zero denominator (all-zero row, constant row for ``minmax``) gives zeros: this is a rescaling for
display and comparison, and a map that singles out no token shows none. (The perturbation metrics
use :func:`gradellm_lens.metrics.importance_weights` instead, which sends such a map to the uniform
weight 1: every token equally important.) ``layer_head`` is left unnormalised.

Word merging (:func:`merge_words`): a word is a run of sub-tokens; a new word starts at a token that
begins with a space marker (byte-level BPE ``Ġ``, SentencePiece ``▁``, or a literal space), at a
newline/tab token or after one, at and after a special token (``<s>``, ``<|im_start|>`` ...), and
at the first generated token (prompt and generation never share a word). WordPiece continuations
(``##ing``) extend the previous word. A token sequence without any ``Ġ``/``▁`` marker (a word-level
tokenizer) keeps one token per word. Punctuation attaches to its word as in whitespace
splitting (``"Paris,"``). Pieces are combined by ``sum`` (default, keeps ``sum``-normalisation),
``max`` or ``mean``; ``layer_head`` is merged the same way along ``pos``.

Span selection: :func:`find_token_span` finds the tokens spelling a substring of the decoded
sequence (e.g. the user message inside a chat template), from the character offsets given by
incremental decoding (``decode(ids[:k])`` for each ``k``, so any tokenizer works);
:func:`restrict_to_span` blanks the scores outside a span (NaN in a tensor; 0 in a result, which
may hold NaN only after a step's prefix) and optionally renormalises within it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence
from typing import Literal, TypeVar, get_args

import torch
from torch import Tensor

from .errors import InvalidInputError, check_choice
from .numerics import masked_minmax
from .result import AttributionResult
from .tensor_types import TokenIds

Normalisation = Literal["sum", "l1", "max", "minmax"]
NORMALISATIONS: tuple[str, ...] = get_args(Normalisation)
PieceReduction = Literal["sum", "max", "mean"]
PIECE_REDUCTIONS: tuple[str, ...] = get_args(PieceReduction)

Scores = TypeVar("Scores", AttributionResult, Tensor)

_WORD_MARKERS = ("Ġ", "▁")  # byte-level BPE / SentencePiece: "this token starts with a space"
_BREAK_CHARS = set("ĊĉčĠ▁ \n\t\r")  # a token made only of these is whitespace (newline, tab, spaces)
_BYTE_WHITESPACE = {"<0x0A>", "<0x09>", "<0x0D>", "<0x20>"}  # SentencePiece byte-fallback whitespace
_SPECIAL = re.compile(r"^<[^<>\s]+>$")
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


# ---- normalisation -------------------------------------------------------------------------------
def _normalise_tensor(x: Tensor, how: Normalisation) -> Tensor:
    valid = ~torch.isnan(x)
    zeros = torch.zeros_like(x)
    if how == "minmax":
        out = masked_minmax(torch.where(valid, x, zeros), valid)
    else:
        values = torch.where(valid, x, zeros)
        if how == "sum":
            denom = values.sum(dim=-1, keepdim=True)
        elif how == "l1":
            denom = values.abs().sum(dim=-1, keepdim=True)
        else:
            denom = values.abs().amax(dim=-1, keepdim=True)
        safe = torch.where(denom != 0, denom, torch.ones_like(denom))
        out = torch.where(denom != 0, values / safe, zeros)
    return torch.where(valid, out, torch.full_like(x, float("nan")))


def _with_aggregation(result: AttributionResult, note: str, **changes) -> AttributionResult:
    options = {**result.options, "aggregation": [*result.options.get("aggregation", []), note]}
    return dataclasses.replace(result, options=options, **changes)


def normalise(scores: Scores, how: Normalisation = "l1") -> Scores:
    """Rescale each step's scores (the last dimension) over its non-NaN positions, for display and comparison.

    A step whose denominator is zero (all scores 0, or all equal under ``"minmax"``) becomes all 0;
    the metrics' :func:`gradellm_lens.metrics.importance_weights` makes such a map uniform (1) instead.

    Args:
        scores: an :class:`AttributionResult` or a ``[..., pos]`` tensor.
        how: ``"sum"``, ``"l1"`` (default), ``"max"`` or ``"minmax"`` (see the module docstring).

    Returns:
        The same kind of object with normalised scores; NaN stays NaN.
    """
    check_choice("how", how, NORMALISATIONS)
    if isinstance(scores, AttributionResult):
        return _with_aggregation(scores, f"normalise:{how}", scores=_normalise_tensor(scores.scores, how))
    return _normalise_tensor(scores, how)


# ---- word merging --------------------------------------------------------------------------------
def _is_special(token: str, special_tokens: Collection[str] | None) -> bool:
    if special_tokens is not None:
        return token in special_tokens
    return bool(_SPECIAL.match(token)) and not _BYTE_TOKEN.match(token)


def _is_whitespace(token: str) -> bool:
    return token in _BYTE_WHITESPACE or (bool(token) and all(ch in _BREAK_CHARS for ch in token))


def word_starts(
    tokens: Sequence[str], *, special_tokens: Collection[str] | None = None, breaks: Collection[int] = ()
) -> list[bool]:
    """Whether each token starts a new word (rules in the module docstring).

    Args:
        tokens: token strings as the tokenizer spells them (``convert_ids_to_tokens``).
        special_tokens: the tokenizer's special tokens (e.g. ``tokenizer.all_special_tokens``);
            by default any ``<...>`` token other than a byte token ``<0xNN>`` counts as special.
        breaks: indices that always start a word (e.g. the first generated token).
    """
    markers = any(t.startswith(_WORD_MARKERS) for t in tokens)
    starts = []
    for i, token in enumerate(tokens):
        if i == 0 or i in breaks:
            starts.append(True)
            continue
        prev = tokens[i - 1]
        isolated = any(_is_special(t, special_tokens) or _is_whitespace(t) for t in (token, prev))
        if markers:
            starts.append(isolated or token.startswith((*_WORD_MARKERS, " ")))
        else:
            starts.append(isolated or not token.startswith("##"))
    return starts


def _groups(starts: Sequence[bool]) -> list[list[int]]:
    groups: list[list[int]] = []
    for i, start in enumerate(starts):
        if start:
            groups.append([i])
        else:
            groups[-1].append(i)
    return groups


def _reduce_pieces(x: Tensor, how: PieceReduction) -> Tensor:
    """NaN-ignoring reduction over the last dimension; all-NaN slices give NaN."""
    empty = torch.isnan(x).all(dim=-1)
    if how == "mean":
        return x.nanmean(dim=-1)
    if how == "sum":
        out = x.nansum(dim=-1)
    else:
        out = x.nan_to_num(nan=-torch.inf).amax(dim=-1)
    return out.masked_fill(empty, float("nan"))


def _merge_positions(x: Tensor, groups: list[list[int]], how: PieceReduction) -> Tensor:
    return torch.stack([_reduce_pieces(x[..., g], how) for g in groups], dim=-1)


def merge_words(
    result: AttributionResult, how: PieceReduction = "sum", *, special_tokens: Collection[str] | None = None
) -> AttributionResult:
    """Merge sub-tokens into words: a new result with one position per word.

    Scores and ``layer_head`` are combined per word with ``how`` (NaN pieces ignored); the merged
    token string is the concatenation of its pieces (``"Ġun" + "believ" + "able"``; WordPiece
    ``##`` removed), its id that of the first piece; ``prompt_length`` becomes the number of prompt
    words and each step position the index of the word holding it.

    Args:
        result: the attribution to merge.
        how: ``"sum"`` (default), ``"max"`` or ``"mean"`` over the pieces of a word.
        special_tokens: the tokenizer's special tokens (default: any ``<...>`` token).
    """
    check_choice("how", how, PIECE_REDUCTIONS)
    starts = word_starts(result.tokens, special_tokens=special_tokens, breaks={result.prompt_length})
    groups = _groups(starts)
    word_of = [w for w, g in enumerate(groups) for _ in g]
    tokens = tuple(
        "".join(result.tokens[i] if k == 0 else result.tokens[i].removeprefix("##") for k, i in enumerate(g))
        for g in groups
    )
    layer_head = None if result.layer_head is None else _merge_positions(result.layer_head, groups, how)
    return _with_aggregation(
        result,
        f"words:{how}",
        tokens=tokens,
        token_ids=result.token_ids[[g[0] for g in groups]],
        prompt_length=sum(1 for g in groups if g[0] < result.prompt_length),
        scores=_merge_positions(result.scores, groups, how),
        step_positions=tuple(word_of[p] for p in result.step_positions),
        layer_head=layer_head,
    )


# ---- spans ---------------------------------------------------------------------------------------
def char_offsets(tokenizer, token_ids: TokenIds | Sequence[int]) -> tuple[str, list[int]]:
    """Decoded text and ``offsets`` such that token ``k`` spells ``text[offsets[k]:offsets[k + 1]]``.

    Offsets come from decoding every prefix (special tokens kept, no clean-up). A token that ends
    inside a multi-byte character is given the character's remaining length by the next token
    (offsets are made non-decreasing), so spans are exact up to such split characters.
    """
    ids = [int(i) for i in torch.as_tensor(token_ids).flatten().tolist()]

    def decode(part: list[int]) -> str:
        return tokenizer.decode(part, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    text = decode(ids)
    offsets = [len(decode(ids[:k])) for k in range(len(ids))] + [len(text)]
    for k in range(len(ids) - 1, -1, -1):
        offsets[k] = min(offsets[k], offsets[k + 1])
    return text, offsets


def find_token_span(
    tokenizer, token_ids: AttributionResult | TokenIds | Sequence[int], text: str, *, occurrence: int = 0
) -> tuple[int, int]:
    """Token span ``[start, end)`` that spells ``text`` inside the decoded ``token_ids``.

    Leading and trailing whitespace of ``text`` is ignored; every token overlapping the remaining
    characters belongs to the span (a token ``"Ġcat"`` belongs to the span of ``"cat"``).

    Args:
        tokenizer: a Hugging Face tokenizer, or a model with a ``tokenizer`` attribute.
        token_ids: the token ids (e.g. the chat-templated prompt), or a result (its ``token_ids``).
        text: the substring to find, e.g. the user message.
        occurrence: which occurrence (0 = first, -1 = last).

    Raises:
        InvalidInputError: ``text`` is empty or does not occur ``occurrence`` times.
    """
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    ids = token_ids.token_ids if isinstance(token_ids, AttributionResult) else token_ids
    stripped = text.strip()
    if not stripped:
        raise InvalidInputError("The span text is empty (or only whitespace).")
    decoded, offsets = char_offsets(tokenizer, ids)
    hits = [m.start() for m in re.finditer(re.escape(stripped), decoded)]
    if not -len(hits) <= occurrence < len(hits):
        found = f"occurs {len(hits)} time(s)" if hits else "does not occur"
        raise InvalidInputError(
            f"{stripped!r} {found} in the decoded tokens (occurrence={occurrence} requested): "
            f"{decoded[:300]!r}{'...' if len(decoded) > 300 else ''}."
        )
    first, last = hits[occurrence], hits[occurrence] + len(stripped)
    inside = [k for k in range(len(offsets) - 1) if offsets[k] < last and offsets[k + 1] > first]
    return inside[0], inside[-1] + 1


def _span_mask(n: int, span: tuple[int, int]) -> Tensor:
    start, end = span
    if not 0 <= start < end <= n:
        raise InvalidInputError(f"Span {span} is not a non-empty range inside the {n} positions.")
    mask = torch.zeros(n, dtype=torch.bool)
    mask[start:end] = True
    return mask


def restrict_to_span(
    scores: Scores, span: tuple[int, int], *, renormalise: Normalisation | None = None, outside: float | None = None
) -> Scores:
    """Keep the scores of positions ``span = (start, end)`` (half-open) and blank the others.

    A tensor gets NaN outside the span. An :class:`AttributionResult` may hold NaN only after a
    step's prefix, so positions outside the span but inside a prefix get ``outside`` (default 0: no
    attribution) in its ``scores`` and ``layer_head``; positions after the prefix stay NaN.

    Args:
        scores: an :class:`AttributionResult` or a ``[..., pos]`` tensor.
        span: token positions to keep, e.g. from :func:`find_token_span`.
        renormalise: optionally :func:`normalise` within the span (the blanked positions take no
            part in it).
        outside: the value outside the span (default NaN for tensors, 0 for results).
    """
    if renormalise is not None:
        check_choice("renormalise", renormalise, NORMALISATIONS)
    if not isinstance(scores, AttributionResult):
        fill = float("nan") if outside is None else outside
        kept = scores.masked_fill(~_span_mask(scores.shape[-1], span).to(scores.device), float("nan"))
        kept = kept if renormalise is None else _normalise_tensor(kept, renormalise)
        return _fill_blanked(kept, scores, fill)
    fill = 0.0 if outside is None else outside
    mask = _span_mask(scores.scores.shape[-1], span)
    kept = scores.scores.masked_fill(~mask, float("nan"))
    kept = kept if renormalise is None else _normalise_tensor(kept, renormalise)
    layer_head = scores.layer_head
    if layer_head is not None:
        layer_head = _fill_blanked(layer_head.masked_fill(~mask, float("nan")), layer_head, fill)
    note = f"span:{span[0]}-{span[1]}" + ("" if renormalise is None else f":{renormalise}")
    return _with_aggregation(scores, note, scores=_fill_blanked(kept, scores.scores, fill), layer_head=layer_head)


def _fill_blanked(kept: Tensor, original: Tensor, fill: float) -> Tensor:
    """``kept`` with ``fill`` where it is NaN but ``original`` was not (blanked, not padding)."""
    return torch.where(torch.isnan(kept) & ~torch.isnan(original), torch.full_like(kept, fill), kept)
