"""Run a model and capture activations and gradients at TransformerLens hook points.

:mod:`.hooks` (hook names, the activation store, logits at chosen positions), :mod:`.recording`
(no-grad forwards), :mod:`.gradients` (one forward + batched backward over the whole graph),
:mod:`.frozen_prefix` (later positions run over earlier positions' keys/values held fixed) and
:mod:`.single_position` (exact per-step gradients at each step's own position, built on it).
"""

from .gradients import Captured, capture_gradients, hook_count
from .hooks import ActivationStore, FwdHook, active_hook_points, check_hook_names, hook_name, logit_rows_hook
from .recording import as_batch, record_activations
from .single_position import GRADIENT_PATHS, StepGradients, step_gradients

__all__ = [
    "GRADIENT_PATHS",
    "ActivationStore",
    "Captured",
    "FwdHook",
    "StepGradients",
    "active_hook_points",
    "as_batch",
    "capture_gradients",
    "check_hook_names",
    "hook_count",
    "hook_name",
    "logit_rows_hook",
    "record_activations",
    "step_gradients",
]
