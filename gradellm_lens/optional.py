"""Optional packages: imported where a feature needs them, with the extra that installs them named.

``pip install gradellm-lens`` installs the attribution core (explain, methods, views, head analysis,
metrics) on TransformerLens, PyTorch, CircuitsVis, jaxtyping and NumPy. The rest is an extra:

- ``models``: ``gguf``, ``safetensors``, ``accelerate``: the built-in GGUF model catalog;
- ``evaluation``: ``pandas``, ``matplotlib``: summaries, tables as data frames, figures;
- ``distributed``: ``accelerate``: ``accelerate launch`` evaluation runs.

:func:`require` imports one of them and turns a missing package into a
:class:`~gradellm_lens.errors.MissingPackageError` whose message holds the pip command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingPackageError

EXTRAS = {
    "models": ("gguf", "safetensors", "accelerate"),
    "evaluation": ("pandas", "matplotlib"),
    "distributed": ("accelerate",),
}
"""Each extra and the top-level modules it provides (``pyproject.toml``'s optional dependencies)."""


def install_command(extra: str) -> str:
    """The pip command that installs ``extra``."""
    return f"pip install 'gradellm-lens[{extra}]'"


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` and return it; when it is not installed, say what needs it and how to get it.

    Args:
        module: the module to import (``"matplotlib"``, ``"safetensors.torch"`` ...).
        extra: the gradellm-lens extra that installs it (a key of :data:`EXTRAS`).
        what: the feature that needs it, to start the message (``"plot_pi_curves"``).

    Raises:
        MissingPackageError: the module (or a package it imports) is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        raise MissingPackageError(
            f"{what} needs {missing}, which is not installed. Install it with: {install_command(extra)}"
        ) from None
