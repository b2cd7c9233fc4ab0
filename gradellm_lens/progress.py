"""Progress bars: tqdm's console bar on stderr, shown only where someone can watch it.

tqdm's console class is used everywhere, never ``tqdm.auto``: in a Jupyter kernel without
ipywidgets, importing ``tqdm.auto`` warns "IProgress not found" and the notebook widget cannot be
drawn; the console bar works in terminals and notebooks alike. Libraries below us (transformers)
import ``tqdm.auto`` themselves: importing this module first resolves it once, with that warning
silenced, so they fall back to the console bar quietly (:mod:`gradellm_lens` imports it first).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from tqdm import TqdmWarning, tqdm

with warnings.catch_warnings():
    warnings.simplefilter("ignore", TqdmWarning)  # "IProgress not found": no notebook widget without ipywidgets
    from tqdm import autonotebook as _autonotebook  # noqa: F401


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
