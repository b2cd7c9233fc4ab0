"""Layer selection shared by every method with a ``layers`` option.

A :data:`LayerSpec` is an int ``K`` (the last K layers), a sequence of layer indices (negative
indices count from the end, as in Python) or ``"all"``. :func:`check_layer_spec` validates the
spec on its own (at option-construction time); :func:`resolve_layers` turns it into absolute,
sorted, de-duplicated indices once the model's depth is known.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Literal

from ..errors import InvalidInputError

LayerSpec = int | Sequence[int] | Literal["all"]

_SHAPE = "layers must be an int K (last K layers), a list of layer indices or 'all'"


def check_layer_spec(layers: LayerSpec) -> int | tuple[int, ...] | str:
    """Validate ``layers`` without a model; lists come back as tuples (hashable, frozen-safe)."""
    if isinstance(layers, str):
        if layers != "all":
            raise InvalidInputError(f"{_SHAPE}, got {layers!r}.")
        return layers
    if isinstance(layers, int) and not isinstance(layers, bool):
        if layers < 1:
            raise InvalidInputError(f"layers={layers}: the number of last layers must be at least 1.")
        return layers
    try:
        out = tuple(_layer_index(x) for x in layers)
    except TypeError:
        raise InvalidInputError(f"{_SHAPE}, got {layers!r}.") from None
    if not out:
        raise InvalidInputError("layers is an empty list: select at least one layer.")
    return out


def _layer_index(value: object) -> int:
    """An integer layer index (Python, numpy or torch int; not bool, not a float such as 1.5)."""
    if isinstance(value, bool):
        raise TypeError
    return operator.index(value)


def resolve_layers(layers: LayerSpec, n_layers: int) -> tuple[int, ...]:
    """Absolute, sorted, de-duplicated layer indices; out-of-range indices raise."""
    layers = check_layer_spec(layers)
    if layers == "all":
        return tuple(range(n_layers))
    if isinstance(layers, int):
        if layers > n_layers:
            raise InvalidInputError(f"layers={layers} but the model has only {n_layers} layers.")
        return tuple(range(n_layers - layers, n_layers))
    bad = [x for x in layers if not -n_layers <= x < n_layers]
    if bad:
        raise InvalidInputError(
            f"Layer index {bad[0]} is out of range: the model has {n_layers} layers (0..{n_layers - 1}, "
            f"or -{n_layers}..-1 from the end)."
        )
    return tuple(sorted({x % n_layers for x in layers}))
