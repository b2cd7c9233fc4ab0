"""gradellm-lens: Grad-ELLM attribution for decoder-only LLMs on TransformerLens.

Quick start::

    import gradellm_lens as gl
    model = gl.load_model()                                   # SmolLM2-135M-Instruct, offline
    result = gl.explain(model, "The capital of France is", max_new_tokens=3)
    print(gl.viz.render(result))

Layout: :mod:`.models` (loading, capability probe), :mod:`.capture` (activations + gradients at
hook points), :mod:`.methods` (Grad-ELLM and baselines, registry), :mod:`.attribute` (step-wise
generation attribution), :mod:`.result` (the shared result type), :mod:`.aggregate`
(normalisation, word merging, span selection), :mod:`.metrics`
(Soft-NC/NS, pi-Soft), :mod:`.tasks` (datasets and prompts), :mod:`.evaluation` (runner),
:mod:`.analysis` (head/layer importance and ablations), :mod:`.viz` (terminal, CircuitsVis, HTML),
:mod:`.cli`.
"""

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

__version__ = "0.2.0"  # the one source of the version: pyproject.toml reads it, results record it

__all__ = [
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
