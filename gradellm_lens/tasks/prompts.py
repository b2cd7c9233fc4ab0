"""Prompt construction: fill a task template, wrap it (chat template or plain), locate the user text.

A template is a ``str.format`` string over an example's fields, e.g.
``"Classify ... \\nReview: {text}\\nSentiment:"``. :func:`fill_template` returns the filled text and
the character span of every field. :func:`encode_with_spans` tokenizes exactly as
:func:`~gradellm_lens.encoding.encode_prompt` does (chat template: system/user/assistant markup
around the filled text; plain: the text with the model's default BOS policy) and maps those
character spans to token spans through the tokenizer's offset mapping. The token spans are the
"user text": the tokens that carry dataset text. Template words, chat markup and the system prompt
lie outside every span, so a "user text only" perturbation mask leaves them intact. A token that
straddles a span boundary counts as user text.

Prompt formats are an explicit choice, recorded with every result: ``"plain"`` (the default: the
filled template as it is) or ``"chat"`` (the model's chat template around it). There is no automatic
choice, because the two can change what a model depends on: a small instruct model in its chat
template may answer from the scaffolding rather than from the dataset text.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..encoding import Span, token_offsets
from ..errors import InvalidInputError
from ..tensor_types import PositionMask, TokenIds


@dataclass(frozen=True)
class PromptedExample:
    """An example turned into model input.

    Attributes:
        example_id: the example's id.
        text: the filled template (the user message).
        token_ids: ``[pos]`` prompt token ids, as the model sees them.
        user_spans: ``[start, end)`` token spans of the dataset text (one per template field).
        prompt_format: ``"plain"`` or ``"chat"``.
        truncated: whether a field was cut to the task's token budget.
    """

    example_id: str
    text: str
    token_ids: TokenIds
    user_spans: tuple[Span, ...]
    prompt_format: str
    truncated: bool = False

    def __post_init__(self) -> None:
        n = self.token_ids.shape[0]
        for start, end in self.user_spans:
            if not 0 <= start < end <= n:
                raise InvalidInputError(f"User-text span {(start, end)} is outside the prompt's {n} tokens.")

    @property
    def length(self) -> int:
        return int(self.token_ids.shape[0])

    def user_mask(self, length: int | None = None) -> PositionMask:
        """``[length]`` bool mask, True on user-text tokens (default length: the prompt)."""
        mask = torch.zeros(self.length if length is None else length, dtype=torch.bool)
        for start, end in self.user_spans:
            mask[start:end] = True
        return mask


def template_fields(template: str) -> list[str]:
    """The field names a template uses, in order; a template ``str.format`` would misread is refused.

    Literal braces are written ``{{`` and ``}}``. Positional (``{}``), indexed (``{a[0]}``),
    attribute (``{a.b}``), converted (``{a!r}``), formatted (``{a:>5}``) and repeated fields are
    refused: each field is replaced by its text exactly once, so that its character span is known.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidInputError(
            f"The prompt template {template!r} is malformed ({exc}); write literal braces as {{{{ and }}}}."
        ) from None
    names = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise InvalidInputError(
                f"The prompt template {template!r} has the placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}; use plain {{field}} placeholders (literal braces: {{{{ and }}}})."
            )
        if name in names:
            raise InvalidInputError(f"The prompt template {template!r} uses {{{name}}} twice; use each field once.")
        names.append(name)
    return names


def fill_template(template: str, fields: Mapping[str, Any]) -> tuple[str, dict[str, Span]]:
    """``template.format(**fields)`` and the character span of each field in the result."""
    template_fields(template)
    parts: list[str] = []
    spans: dict[str, Span] = {}
    pos = 0
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(literal)
        pos += len(literal)
        if name is None:
            continue
        if name not in fields:
            raise InvalidInputError(f"The prompt template needs field {name!r}; the example has {', '.join(fields)}.")
        value = str(fields[name])
        spans[name] = (pos, pos + len(value))
        parts.append(value)
        pos += len(value)
    return "".join(parts), spans


def truncate_to_tokens(tokenizer, text: str, max_tokens: int | None) -> tuple[str, bool]:
    """The longest prefix of ``text`` covering its first ``max_tokens`` tokens, and whether it was cut."""
    if max_tokens is None:
        return text, False
    ids, offsets = token_offsets(tokenizer, text)
    if len(ids) <= max_tokens:
        return text, False
    return text[: offsets[max_tokens - 1][1]], True
