"""Human-readable token strings (byte-level BPE and SentencePiece markers undone)."""

from __future__ import annotations

from collections.abc import Sequence

_MARKERS = {"Ġ": " ", "▁": " ", "Ċ": "\\n", "ĉ": "\\t", "č": "\\r"}


def display_token(token: str) -> str:
    """``"Ġcat"`` -> ``" cat"``, ``"Ċ"`` -> ``"\\n"`` (visible); other text unchanged."""
    return "".join(_MARKERS.get(ch, ch) for ch in token)


def display_tokens(tokens: Sequence[str]) -> list[str]:
    return [display_token(t) for t in tokens]
