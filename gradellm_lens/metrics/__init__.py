"""Faithfulness metrics: Soft-NS/NC (Zhao & Aletras; ReAGent) and π-Soft-NS/NC with their AUC.

Entry point: :func:`evaluate_step` with a :class:`FaithfulnessConfig`, returning
:class:`FaithfulnessScores`; :func:`evaluate_result` applies it to every step of an
:class:`~gradellm_lens.result.AttributionResult`. The pieces (normalisation, π-rescaling, Soft
formulas, batched masking) are public for analyses and tests.
"""

from .faithfulness import (
    FaithfulnessConfig,
    FaithfulnessScores,
    StepReference,
    evaluate_result,
    evaluate_step,
    step_reference,
)
from .normalise import NORMALISE_KINDS, importance_weights
from .perturb import MaskedForward, as_masked_forward, draw_uniforms, step_seed
from .pi_soft import DEFAULT_PIS, check_pis, normalised_auc, pi_keep_probabilities
from .positions import all_prefix_mask, check_perturbable, span_mask
from .retention import FALLBACK_RULES, RESCALE_KINDS, Retention, retention_probs
from .soft import (
    PROBABILITY_KINDS,
    distribution_distance,
    log_ratio,
    plain_soft_keep,
    probability_drop,
    soft_nc,
    soft_ns,
)

__all__ = [
    "DEFAULT_PIS",
    "FALLBACK_RULES",
    "NORMALISE_KINDS",
    "PROBABILITY_KINDS",
    "RESCALE_KINDS",
    "FaithfulnessConfig",
    "FaithfulnessScores",
    "MaskedForward",
    "Retention",
    "StepReference",
    "all_prefix_mask",
    "as_masked_forward",
    "check_perturbable",
    "check_pis",
    "distribution_distance",
    "draw_uniforms",
    "evaluate_result",
    "evaluate_step",
    "log_ratio",
    "importance_weights",
    "normalised_auc",
    "pi_keep_probabilities",
    "plain_soft_keep",
    "probability_drop",
    "retention_probs",
    "soft_nc",
    "soft_ns",
    "span_mask",
    "step_reference",
    "step_seed",
]
