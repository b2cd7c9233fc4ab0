"""gradellm-lens: Grad-ELLM attribution for decoder-only LLMs on TransformerLens.

Quick start::

    import gradellm_lens as gl
    model = gl.load_model()                                   # SmolLM2-135M-Instruct, offline
    result = gl.explain(model, "The capital of France is", max_new_tokens=3)
    result.show()                                             # heatmap (HTML in a notebook)

Layout: :mod:`.models` (loading, capability probe), :mod:`.capture` (activations + gradients at
hook points), :mod:`.methods` (Grad-ELLM and baselines, registry), :mod:`.attribute` (step-wise
generation attribution), :mod:`.result` (the shared result type), :mod:`.aggregate`
(normalisation, word merging, span selection), :mod:`.metrics`
(Soft-NC/NS, pi-Soft), :mod:`.tasks` (datasets and prompts), :mod:`.evaluation` (runner),
:mod:`.analysis` (head/layer importance, ablations), :mod:`.viz` (terminal,
CircuitsVis, HTML), :mod:`.cli` (the commands and the head/layer studies), :mod:`.optional` (the extras' packages).

``import gradellm_lens`` is cheap (no torch): the public names below are imported together on
first use of any of them, so the command line starts, answers ``--help`` / ``--version`` and
handles Ctrl-C before the heavy libraries load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import progress as _progress  # noqa: F401  (first: a quiet tqdm.auto for the libraries below)

from .versions import __version__  # its one source: pyproject.toml reads it there, results record it

_PUBLIC = {
    "AttributionResult": ".result",
    "FlatAttributionWarning": ".errors",
    "GradEllm": ".methods",
    "InvalidInputError": ".errors",
    "LensError": ".errors",
    "MissingPackageError": ".errors",
    "NumericalError": ".errors",
    "Step": ".targets",
    "Target": ".targets",
    "UnknownTokenWarning": ".errors",
    "UnsupportedModelError": ".errors",
    "encode_prompt": ".encoding",
    "explain": ".attribute",
    "get_method": ".methods",
    "list_methods": ".methods",
    "load_model": ".models",
    "model_info": ".models",
}
_SUBPACKAGES = ("aggregate", "analysis", "metrics", "viz")

__all__ = [
    "__version__",
    "AttributionResult",
    "FlatAttributionWarning",
    "GradEllm",
    "InvalidInputError",
    "LensError",
    "MissingPackageError",
    "NumericalError",
    "Step",
    "Target",
    "UnknownTokenWarning",
    "UnsupportedModelError",
    "aggregate",
    "analysis",
    "encode_prompt",
    "explain",
    "get_method",
    "list_methods",
    "load_model",
    "metrics",
    "model_info",
    "viz",
]

if TYPE_CHECKING:
    from . import aggregate, analysis, metrics, viz
    from .attribute import explain
    from .encoding import encode_prompt
    from .errors import (
        FlatAttributionWarning,
        InvalidInputError,
        LensError,
        MissingPackageError,
        NumericalError,
        UnknownTokenWarning,
        UnsupportedModelError,
    )
    from .methods import GradEllm, get_method, list_methods
    from .models import load_model, model_info
    from .result import AttributionResult
    from .targets import Step, Target


def _load_public_api() -> None:
    """Import every public name (and the sub-packages, whose import registers the result views)."""
    import importlib

    for name in _SUBPACKAGES:
        globals()[name] = importlib.import_module(f".{name}", __name__)
    for name, module in _PUBLIC.items():
        globals()[name] = getattr(importlib.import_module(module, __name__), name)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC or name in _SUBPACKAGES:
        _load_public_api()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
