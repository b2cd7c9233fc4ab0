"""Batching of perturbed inputs: the chunks of rows that run per forward pass, with progress.

Integrated gradients and occlusion evaluate many perturbed copies of one sequence; they run them
``batch_size`` rows per forward pass rather than one forward per perturbation. The result does not
depend on ``batch_size`` beyond floating-point summation order.
"""

from __future__ import annotations

from collections.abc import Iterable

from tqdm import tqdm  # the console bar: tqdm.auto warns "IProgress not found" in notebooks without ipywidgets


def chunks(n: int, size: int, desc: str) -> Iterable[slice]:
    """Slices of ``range(n)`` of at most ``size``, with a tqdm bar when there is more than one."""
    starts = range(0, n, size)
    return tqdm([slice(s, min(s + size, n)) for s in starts], desc=desc, disable=len(starts) < 2 or None, leave=False)
