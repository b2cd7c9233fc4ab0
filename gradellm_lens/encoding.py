"""Text and token ids in: checks and prompt encoding, shared by every entry point.

* :func:`check_text` refuses text that is not valid Unicode (lone surrogates, which is what Python
  makes of undecodable bytes on the command line or in a file read with ``surrogateescape``);
  :func:`check_strings` applies it to every string (and key) of a decoded JSON value;
* :func:`decode_json` is the one JSON decoder for untrusted files (data, prompts and results lines,
  attribution files): nesting deeper than :data:`MAX_JSON_DEPTH` levels (which would exhaust
  Python's recursion limit while decoding, or while checking what was decoded) and strings that
  are not valid Unicode are refused, naming ``file:line``;
* :func:`check_token_ids` is the one token-id validation (1-D integer ids inside the vocabulary and
  the context);
* :func:`encode_prompt` turns a prompt (text in a :data:`PROMPT_FORMATS` format, or ids) into
  checked ids; :func:`chat_messages` builds the chat-template messages;
* :func:`token_spans` finds the tokens of character spans of the text inside those ids (the user's
  text inside a chat template, a dataset field inside a prompt template); :func:`encode_with_spans`
  does both.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from .errors import InvalidInputError, UnknownTokenWarning, check_choice
from .models.capabilities import ModelInfo, model_info
from .tensor_types import TokenIds

Prompt = str | Sequence[int] | torch.Tensor
Span = tuple[int, int]
"""A half-open range ``[start, end)`` of character or token positions."""

PromptFormat = Literal["plain", "chat"]
PROMPT_FORMATS: tuple[str, ...] = get_args(PromptFormat)
"""``"plain"``: the text as given (the tokenizer's default BOS policy); ``"chat"``: wrapped in the
model's chat template as one user turn followed by the generation prompt."""


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def check_prompt_format(prompt_format: str) -> PromptFormat:
    """Return ``prompt_format`` if it is one of :data:`PROMPT_FORMATS`; else a "Did you mean" error."""
    return check_choice("prompt_format", prompt_format, PROMPT_FORMATS)


def check_text(text: str, what: str = "the text") -> str:
    """Return ``text`` if it is valid Unicode; raise :class:`InvalidInputError` naming the first bad character.

    A lone surrogate (U+D800..U+DFFF) cannot be encoded as UTF-8, so no tokenizer accepts it. Python
    produces one for every undecodable byte of a command-line argument (``surrogateescape``: byte
    0xff becomes U+DCFF); JSON ``"\\ud800"`` escapes produce them too.
    """
    bad = _SURROGATE.search(text)
    if bad is not None:
        code, i = ord(bad.group()), bad.start()
        label = what[0].upper() + what[1:]
        if 0xDC80 <= code <= 0xDCFF:
            why = f"the byte 0x{code - 0xDC00:02x}, which is not valid UTF-8"
        else:
            why = f"an unpaired surrogate U+{code:04X}, which is not valid Unicode"
        raise InvalidInputError(
            f"{label} has {why} at character {i}; pass UTF-8 text (re-encode the file or argument)."
        )
    return text


MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays and objects :func:`decode_json` accepts (the files it reads need < 10)."""
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')  # a string literal (skipped) or a bracket
_NOT_UNICODE = re.compile(_SURROGATE.pattern + r"|\\u[dD][89a-fA-F]")  # a surrogate, raw or as a JSON escape


def _too_deep_at(text: str) -> int | None:
    """Offset of the first bracket nested deeper than :data:`MAX_JSON_DEPTH` (outside strings), or None."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return None
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return match.start()
        elif char in "]}":
            depth -= 1
    return None


def decode_json(text: str, where: str, *, line: int = 1, **options: Any) -> Any:
    """``json.loads(text, **options)`` for text from a file; ``where`` names the file, ``line`` its first line.

    Raises:
        InvalidInputError: arrays/objects nested deeper than :data:`MAX_JSON_DEPTH`
            (``"where:line: ..."``, the line of the offending bracket), or a string that is not valid
            Unicode (a lone surrogate, e.g. the escape ``"\\ud800"``; the field is named).
        json.JSONDecodeError: ``text`` is not JSON (the caller words the message); errors raised by
            ``options``' hooks propagate too.
    """
    at = _too_deep_at(text)
    try:
        value = json.loads(text, **options) if at is None else None
    except RecursionError:  # a deep stack before the call; the scan above normally prevents it
        at = 0
    if at is not None:
        raise InvalidInputError(
            f"{where}:{line + text.count(chr(10), 0, at)}: arrays/objects nested more than {MAX_JSON_DEPTH} levels "
            "deep, which gradellm-lens does not read (a damaged or hostile file?)."
        )
    if _NOT_UNICODE.search(text):
        check_strings(value, f"{where}:{line}")
    return value


def check_strings(value: Any, where: str) -> None:
    """Refuse a decoded JSON value holding text that is not valid Unicode, naming ``where`` and the field.

    JSON escapes can spell lone surrogates (``"\\ud800"``), which no tokenizer, terminal or UTF-8
    file accepts; every string and object key is checked with :func:`check_text` (iteratively: no
    recursion however deep the value).
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        name, item = stack.pop()
        texts: list[tuple[str, str]] = []
        if isinstance(item, str):
            texts.append((f"field {name!r}" if name else "the value", item))
        elif isinstance(item, dict):
            texts.extend((f"a field name in {name!r}" if name else "a field name", key) for key in item)
            stack.extend((f"{name}.{key}" if name else key, v) for key, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{name}[{i}]", v) for i, v in enumerate(item))
        for what, text in texts:
            try:
                check_text(text, what)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{where}: {exc}") from None


def check_token_ids(tokens: Tensor | Sequence[int], info: ModelInfo, what: str = "the token sequence") -> TokenIds:
    """``tokens`` as 1-D int64 ids (a ``[1, pos]`` batch is squeezed), checked against ``info``.

    Raises:
        InvalidInputError: not convertible to ids, not 1-D, empty, not integer, longer than the
            model's context, or an id outside ``[0, d_vocab)``. The message starts with ``what``.
    """
    label = what[0].upper() + what[1:]
    try:
        ids = torch.as_tensor(tokens)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidInputError(
            f"{label} must be a 1-D sequence of integer token ids, got {type(tokens).__name__} "
            "(encode text with gradellm_lens.encode_prompt)."
        ) from None
    if ids.ndim == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.ndim != 1:
        hint = " (pass a list of prompts for a batch)" if ids.ndim == 2 else ""
        raise InvalidInputError(f"{label} must be a 1-D sequence of token ids, got shape {tuple(ids.shape)}{hint}.")
    if ids.numel() == 0:
        raise InvalidInputError(f"{label} is empty: there is nothing to attribute.")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise InvalidInputError(f"{label} must hold integer token ids, got dtype {ids.dtype}.")
    if ids.shape[0] > info.n_ctx:
        raise InvalidInputError(
            f"{label} has {ids.shape[0]} tokens, longer than the model's context of {info.n_ctx}; shorten it."
        )
    bad = (ids < 0) | (ids >= info.d_vocab)
    if bad.any():
        raise InvalidInputError(
            f"{label} has token id {int(ids[bad][0])}, outside the vocabulary (valid ids: 0..{info.d_vocab - 1})."
        )
    return ids.long()


def chat_messages(prompt: str, system: str | None = None) -> list[dict[str, str]]:
    """The chat-template messages of one user prompt (an optional system message first)."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def encode_prompt(
    model, prompt: Prompt, *, prompt_format: PromptFormat = "plain", system: str | None = None
) -> TokenIds:
    """Token ids of ``prompt``.

    A string is wrapped in the model's chat template (user turn + generation prompt) when
    ``prompt_format`` is ``"chat"``, else tokenized with the model's default BOS policy, never truncated.
    Token ids (a list, or a 1-D or ``[1, pos]`` integer tensor) are taken as given.

    Documented behaviour for unusual text: special-token strings (``"<s></s>"``,
    ``"<|im_start|>"``) become those special tokens, as the tokenizer defines, and are attributed
    like any other token; unicode, emoji, right-to-left text and control characters (``\x00``,
    ``\x1b``) go to the tokenizer unchanged, and pieces it cannot represent become its unknown
    token (with a warning).

    Raises:
        InvalidInputError: text that is not valid Unicode (named with its position), empty or
            whitespace-only text, no chat template, a prompt longer than the
            model's context, or ids that are not 1-D integers inside the vocabulary.
    """
    tokenizer = model.tokenizer
    info = model_info(model)
    if isinstance(prompt, str):
        check_text(prompt, "the prompt")
        if not prompt.strip():
            raise InvalidInputError("The prompt is empty (or only whitespace): there is nothing to attribute.")
        if check_prompt_format(prompt_format) == "chat":
            if system is not None:
                check_text(system, "the system message")
            if not getattr(tokenizer, "chat_template", None):
                raise InvalidInputError(
                    "prompt_format='chat' needs a chat template, and this model's tokenizer has none; "
                    "use prompt_format='plain' (--prompt-format plain)."
                )
            ids = tokenizer.apply_chat_template(
                chat_messages(prompt, system), add_generation_prompt=True, tokenize=True
            )
            if not isinstance(ids, list):  # BatchEncoding in recent transformers
                ids = ids["input_ids"]
            ids = torch.tensor(ids, dtype=torch.long)
        else:
            ids = model.to_tokens(prompt, truncate=False)[0].cpu()
        warn_unknown_tokens(tokenizer, prompt, ids.tolist(), "prompt")
    elif isinstance(prompt, torch.Tensor):
        ids = prompt.detach().cpu()
    elif isinstance(prompt, Sequence):
        ids = prompt
    else:
        raise InvalidInputError(f"The prompt must be text or token ids, got {type(prompt).__name__}.")
    return check_token_ids(ids, info, "the prompt")


def warn_unknown_tokens(tokenizer, text: str, ids: Sequence[int], what: str) -> None:
    """Warn when the tokenizer turned parts of ``text`` into its unknown token."""
    unk, unk_text = getattr(tokenizer, "unk_token_id", None), getattr(tokenizer, "unk_token", None)
    if unk is None or (unk_text and unk_text in text):
        return
    if n := sum(1 for i in ids if i == unk):
        warnings.warn(
            f"{n} piece(s) of the {what} are not in the model's vocabulary and became the unknown token {unk_text!r}.",
            UnknownTokenWarning,
            stacklevel=4,
        )


def token_offsets(tokenizer, text: str) -> tuple[list[int], list[Span]]:
    """Token ids of ``text`` (no special tokens added) and each token's character span."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise InvalidInputError(
            "Locating the user text needs a fast (Rust) tokenizer with offset mappings; this tokenizer has none."
        ) from None
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def token_spans(
    model, text: str, ids: TokenIds, char_spans: Mapping[str, Span], prompt_format: PromptFormat,
    system: str | None = None,
) -> tuple[Span, ...]:  # fmt: skip
    """The token span of each character span of ``text`` in ``ids`` (``encode_prompt``'s ids of ``text``).

    Spans that cover no token are left out. Raises :class:`InvalidInputError` when the chat template
    changed the text or the ids do not end with the tokenizer's own tokens of the rendered prompt.
    """
    tokenizer = model.tokenizer
    rendered = (
        tokenizer.apply_chat_template(chat_messages(text, system), add_generation_prompt=True, tokenize=False)
        if prompt_format == "chat"
        else text
    )
    base = rendered.rfind(text)
    if base < 0:
        raise InvalidInputError("The chat template changed the user text, so its tokens cannot be located.")
    enc_ids, offsets = token_offsets(tokenizer, rendered)
    shift = ids.shape[0] - len(enc_ids)
    if shift < 0 or ids[shift:].tolist() != enc_ids:
        raise InvalidInputError("Could not align the prompt's tokens with the tokenizer's offsets.")
    out = []
    for a, b in char_spans.values():
        inside = [j for j, (s, e) in enumerate(offsets) if e > s and s < base + b and e > base + a]
        if inside:
            out.append((inside[0] + shift, inside[-1] + 1 + shift))
    return tuple(out)


def encode_with_spans(
    model, text: str, char_spans: Mapping[str, Span], prompt_format: PromptFormat, system: str | None = None
) -> tuple[TokenIds, tuple[Span, ...]]:
    """Token ids of ``text`` (as :func:`encode_prompt` makes them) and the token span of each char span."""
    ids = encode_prompt(model, text, prompt_format=prompt_format, system=system)
    return ids, token_spans(model, text, ids, char_spans, prompt_format, system)


def user_text_span(
    model, prompt: Prompt, ids: TokenIds, prompt_format: PromptFormat, system: str | None = None
) -> Span | None:
    """The tokens of the user's own text in ``ids``: without the chat template, the system prompt and the
    special tokens the tokenizer adds (a BOS). None for prompts given as ids, or where the tokens cannot be
    located (the views then show every token)."""
    if not isinstance(prompt, str):
        return None
    try:
        spans = token_spans(model, prompt, ids, {"user": (0, len(prompt))}, prompt_format, system)
    except InvalidInputError:
        return None
    return spans[0] if spans else None
