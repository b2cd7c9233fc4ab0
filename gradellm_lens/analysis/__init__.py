"""Head- and layer-level analysis: Grad-ELLM head importance, ablations and their agreement.

Public API (stable; the notebooks, the studies (:mod:`gradellm_lens.cli.studies`) and ``analyses/`` use exactly this):

Head importance (:mod:`.importance`, GQA in :mod:`.gqa`)
    ``HeadImportance`` (``scores [layer, head]``, ``layers``, ``measure``, ``unit``; ``ranking()``,
    ``top(k)``, ``to_kv_groups(n_kv)``, ``rows()``);
    ``head_importance(result, measure="positive")`` from a Grad-ELLM result's ``layer_head``
    (measures ``positive`` = ``Σ_i ReLU(c_i)``, ``net_abs`` = ``|Σ_i c_i|``, ``net``, ``abs``);
    ``grad_ellm_head_importance(model, tokens, target)`` (runs ``GradEllm(layers="all")``);
    ``dataset_head_importance(items)``; ``output_norm_importance(model, tokens)`` (‖z_h W_O^h‖ baseline);
    ``random_importance(n_layers, n_heads, seed)`` (chance level); ``HeadImportance.magnitude()``;
    ``kv_head_of``, ``query_heads_of``, ``aggregate_kv_groups``.

Ablations (:mod:`.ablation`)
    ``Ablation(kind="query_heads"|"kv_heads"|"layers", heads=[(layer, head)], layers=[...],
    mode="zero"|"mean"|"resample", reference=..., source=..., positions="aligned"|"random",
    kv_parts="kv"|"k"|"v", seed=0)``; ``collect_reference(model, prompts)``;
    ``ablated(model, ablation)`` (context manager: forward passes, greedy generation, gradient
    capture); ``ablation_hooks(model, ablation)``; ``row_ablation_hooks(model, ablations)``.

Effects (:mod:`.effects`, :mod:`.curves`)
    ``ablation_effect(model, tokens, target, ablation) -> AblationEffect`` (``score_drop``,
    ``prob_drop``, ``clean_choice`` / ``ablated_choice``); ``ablation_effects`` (many ablations,
    batched); ``single_head_effects`` (ablate each head alone -> ``HeadImportance``);
    ``ablated_continuation`` / ``continuation_agreement``; ``ablation_curve``,
    ``cumulative_ablations``, ``random_head_order``, ``layer_matched_order`` (the same-layer random
    control), ``default_counts``, ``curve_auc``.

Patching (:mod:`.patching`)
    ``activation_patching(model, clean, corrupted, metric, direction="both")`` (per-head ``hook_z``
    patching, corrupted into clean = noising and clean into corrupted = denoising: the ground
    truth) and ``attribution_patching(...)`` (gradient x activation difference, one forward and
    backward), both -> ``PatchingResult`` (``noising`` / ``denoising`` ``[layer, head]``,
    ``importance(direction)``). Contrast tasks with clean/corrupted pairs: :mod:`gradellm_lens.tasks.contrast`.

Agreement (:mod:`.correlation`)
    ``spearman``, ``kendall_tau``, ``top_k_overlap``, ``rank_agreement(a, b) -> RankAgreement``;
    over prompts (:mod:`.comparison`): ``scorer_agreement(truths, scores) -> ScorerAgreement``
    (pooled Spearman's ρ and top-k recall, per-prompt ρ, bootstrap CIs over prompts).

Low level (re-exported from :mod:`gradellm_lens.capture`)
    ``record_activations(model, tokens, names, fwd_hooks=...)``, ``hook_name(kind, layer)``.

Example::

    import gradellm_lens as gl
    from gradellm_lens.analysis import Ablation, ablation_effect, grad_ellm_head_importance

    model = gl.load_model()
    ids = gl.encode_prompt(model, "The capital of France is")
    target = gl.Target(model.to_single_token(" Paris"))
    importance = grad_ellm_head_importance(model, ids, target)   # [30 layers, 9 heads]
    effect = ablation_effect(model, ids, target, Ablation(heads=importance.top(5)))
    print(effect.score_drop)
"""

from ..capture import hook_name, record_activations
from .ablation import (
    Ablation,
    AblationKind,
    AblationMode,
    AblationReference,
    ablated,
    ablation_hooks,
    collect_reference,
    row_ablation_hooks,
)
from .comparison import ScorerAgreement, scorer_agreement
from .correlation import RankAgreement, kendall_tau, rank_agreement, spearman, top_k_overlap
from .curves import (
    AblationCurve,
    ablation_curve,
    cumulative_ablations,
    curve_auc,
    default_counts,
    layer_matched_order,
    random_head_order,
)
from .effects import (
    AblationEffect,
    ablated_continuation,
    ablation_effect,
    ablation_effects,
    continuation_agreement,
    single_head_effects,
)
from .gqa import aggregate_kv_groups, kv_head_of, query_heads_of
from .importance import (
    HeadImportance,
    ImportanceMeasure,
    dataset_head_importance,
    grad_ellm_head_importance,
    head_importance,
    output_norm_importance,
    random_importance,
)
from .patching import PatchingResult, activation_patching, attribution_patching

__all__ = [
    "Ablation",
    "AblationCurve",
    "AblationEffect",
    "AblationKind",
    "AblationMode",
    "AblationReference",
    "HeadImportance",
    "ImportanceMeasure",
    "PatchingResult",
    "RankAgreement",
    "ScorerAgreement",
    "ablated",
    "ablated_continuation",
    "ablation_curve",
    "ablation_effect",
    "ablation_effects",
    "ablation_hooks",
    "activation_patching",
    "aggregate_kv_groups",
    "attribution_patching",
    "collect_reference",
    "continuation_agreement",
    "cumulative_ablations",
    "curve_auc",
    "dataset_head_importance",
    "default_counts",
    "grad_ellm_head_importance",
    "head_importance",
    "hook_name",
    "kendall_tau",
    "kv_head_of",
    "layer_matched_order",
    "output_norm_importance",
    "query_heads_of",
    "random_head_order",
    "random_importance",
    "rank_agreement",
    "record_activations",
    "row_ablation_hooks",
    "scorer_agreement",
    "single_head_effects",
    "spearman",
    "top_k_overlap",
]
