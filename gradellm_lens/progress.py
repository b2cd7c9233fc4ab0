"""Progress bars: tqdm's console bar on stderr, shown only where someone can watch it.

tqdm's console class is used everywhere, never ``tqdm.auto``: in a Jupyter kernel without
ipywidgets, importing ``tqdm.auto`` warns "IProgress not found" and the notebook widget cannot be
drawn; the console bar works in terminals and notebooks alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str,
    enabled: bool | None = None,
    leave: bool = True,
) -> tqdm:
    """A tqdm bar over ``iterable`` (or updated by hand up to ``total``).

    Args:
        enabled: ``True`` always shows it, ``False`` never, ``None`` (default) only when stderr is
            a terminal (so logs, pipes and CI output stay clean).
        leave: keep the finished bar on screen.
    """
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=None if enabled is None else not enabled,
        leave=leave,
        dynamic_ncols=True,
    )
