"""Human-readable token strings: tokenizer markers undone, control characters made visible.

Tokenizers store tokens in an internal alphabet: byte-level BPE (GPT-2, Llama-3, SmolLM2) maps
every byte to a printable character (``"Ġ"`` is a space, ``"Ċ"`` a newline, ``"Ã©"`` the two
UTF-8 bytes of ``"é"``); SentencePiece writes a space as ``"▁"``. :func:`display_token` turns one
token into the text it stands for, with newlines, tabs and carriage returns written as the
visible escapes ``\\n``, ``\\t``, ``\\r`` so a heatmap row stays on one line, and every other
control character (ESC, NUL, DEL, C1) as ``\\xNN`` so token text cannot inject terminal escapes.
:func:`decode_tokens` joins a whole sequence into plain text (real newlines; multi-byte characters
split across tokens are reassembled).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

_VISIBLE = str.maketrans({"\n": "\\n", "\t": "\\t", "\r": "\\r"})
# every other C0/C1 control character (ESC, NUL, DEL ...) as a visible \xNN escape, so that token
# text can never inject terminal escape sequences or invisible characters into a view
_CONTROL = str.maketrans({c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)] if chr(c) not in "\n\t\r"})


@cache
def _byte_decoder() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


def _token_bytes(token: str) -> bytes | None:
    """The bytes of a byte-level BPE token, or None when ``token`` is not in that alphabet."""
    decoder = _byte_decoder()
    if not all(ch in decoder for ch in token):
        return None
    return bytes(decoder[ch] for ch in token)


def _plain(token: str) -> str:
    raw = _token_bytes(token)
    if raw is not None:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:  # part of a multi-byte character, or not byte-level at all
            pass
    return token.replace("▁", " ")


def display_token(token: str) -> str:
    """``"Ġcat"`` -> ``" cat"``, ``"Ã©"`` -> ``"é"``, ``"Ċ"`` -> ``"\\n"`` (visible); special tokens unchanged."""
    return _plain(token).translate(_VISIBLE).translate(_CONTROL)


def quote_token(token: str) -> str:
    """:func:`display_token` in single quotes, for lists and labels: ``' cat'``, ``'\\n'``.

    Not ``repr``, which would escape the backslash of a visible ``\\n`` a second time (``'\\\\n'``).
    """
    return f"'{display_token(token)}'"


def display_tokens(tokens: Sequence[str]) -> list[str]:
    """:func:`display_token` of each token."""
    return [display_token(t) for t in tokens]


def decode_tokens(tokens: Sequence[str]) -> str:
    """The text a token sequence spells (real newlines), for showing prompts and generations."""
    raw = [_token_bytes(t) for t in tokens]
    if all(r is not None for r in raw):
        text = b"".join(raw).decode("utf-8", errors="replace")
    else:
        text = "".join(_plain(t) for t in tokens)
    return text.translate(_CONTROL)
