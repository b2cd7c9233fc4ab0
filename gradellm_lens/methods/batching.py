"""Batching of perturbed inputs: validated batch sizes and progress-reporting chunks.

Integrated gradients and occlusion evaluate many perturbed copies of one sequence; they run them
``batch_size`` rows per forward pass rather than one forward per perturbation. The result does not
depend on ``batch_size`` beyond floating-point summation order.
"""

from __future__ import annotations

from collections.abc import Iterable

from tqdm.auto import tqdm

from ..errors import InvalidInputError


def check_batch_size(batch_size: int) -> None:
    """Raise :class:`InvalidInputError` unless ``batch_size`` is a positive integer."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}.")


def chunks(n: int, size: int, desc: str) -> Iterable[slice]:
    """Slices of ``range(n)`` of at most ``size``, with a tqdm bar when there is more than one."""
    starts = range(0, n, size)
    return tqdm([slice(s, min(s + size, n)) for s in starts], desc=desc, disable=len(starts) < 2 or None, leave=False)
