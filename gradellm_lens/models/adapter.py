"""The one place that tells TransformerLens' two model classes apart.

gradellm-lens accepts

* a ``TransformerBridge`` (TransformerLens 4.x; :func:`gradellm_lens.load_model` returns one),
  which wraps a Hugging Face model (``original_model``) and keeps its weights and numerics; and
* a ``HookedTransformer`` (TransformerLens 3.x), which holds its own copy of the weights in
  TransformerLens' layout.

Both expose the same hook-point vocabulary (``blocks.L.attn.hook_q/k/v``, ``hook_attn_scores``,
``hook_pattern``, ``hook_z``, ``blocks.L.hook_attn_out``, ``hook_embed``, ``unembed.hook_in``),
``hooks()``, ``cfg`` (``n_layers``, ``n_heads``, ``n_key_value_heads``, ``d_head``, ``d_model``,
``n_ctx``, ``d_vocab``), ``tokenizer`` and ``to_tokens``, so methods, metrics, views and ablations
address both through these alone. What differs is answered here, and nowhere else:

============================  ==========================================  ==========================================
                              ``TransformerBridge``                       ``HookedTransformer``
============================  ==========================================  ==========================================
architecture                  ``original_model.config.architectures[0]``  ``cfg.original_architecture``
per-head ``hook_result``      only where the attention component          always, after ``set_use_attn_result(True)``
                              supports it
weights                       the Hugging Face model's                    ``from_pretrained`` folds LayerNorm scales,
                                                                          centres writing weights and the
                                                                          unembedding, folds value biases into
                                                                          ``b_O``; ``from_pretrained_no_processing``
                                                                          keeps them
BOS                           ``cfg.default_prepend_bos`` (per family)    ``cfg.default_prepend_bos``
============================  ==========================================  ==========================================

Weight processing matters for attribution (TransformerLens, Nanda & Bloom 2022):
centring the unembedding subtracts the mean logit from every logit of a position (log-probabilities
do not change), so an attribution of a raw target logit explains ``logit - mean logit``; a
contrastive target (``target - contrast``) and probability-based metrics are unaffected. Folding
value biases changes ``hook_v`` (and so Grad-ELLM's ``g · v``) on models with value biases (Qwen2);
folding LayerNorm scales does not change ``hook_q/k/v/z``. :func:`weight_processing` reports what
was applied, and the capability probe records it.

``use_attn_result`` is neither needed nor changed: per-head outputs are computed from ``hook_z``.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import InvalidInputError

ModelClass = Literal["TransformerBridge", "HookedTransformer"]
MODEL_CLASSES: tuple[ModelClass, ...] = ("TransformerBridge", "HookedTransformer")


def model_class(model) -> ModelClass:
    """Which accepted TransformerLens class ``model`` is (subclasses count); raise for anything else.

    Raises:
        InvalidInputError: ``model`` is not a TransformerLens model (a name, an unbooted HF model,
            None ...) or is one without a tokenizer; the message says how to get an accepted one.
    """
    for cls in type(model).__mro__:
        if cls.__name__ in MODEL_CLASSES and cls.__module__.startswith("transformer_lens"):
            if getattr(model, "tokenizer", None) is None:
                raise InvalidInputError(
                    f"This {cls.__name__} has no tokenizer, which gradellm-lens needs to read prompts and "
                    "show tokens; create it with tokenizer=... (or call model.set_tokenizer(tokenizer))."
                )
            return cls.__name__  # type: ignore[return-value]
    hint = f"load_model({model!r})" if isinstance(model, str) else "load_model(...)"
    if isinstance(model, torch.nn.Module):
        hint = "load_model(hf_model, tokenizer=tokenizer) (a transformers model is booted in place)"
    raise InvalidInputError(
        f"Expected a TransformerBridge (from gradellm_lens.load_model) or a TransformerLens 3.x "
        f"HookedTransformer, got {type(model).__name__}; load it first with {hint}."
    )


def hf_config(model):
    """The wrapped Hugging Face config of a ``TransformerBridge``; None for a ``HookedTransformer``."""
    if model_class(model) != "TransformerBridge":
        return None
    return getattr(getattr(model, "original_model", None), "config", None)


def architecture(model) -> str:
    """The Hugging Face architecture class name the model implements (``"LlamaForCausalLM"`` ...)."""
    config = hf_config(model)
    archs = getattr(config, "architectures", None)
    if archs:
        return str(archs[0])
    if model_class(model) == "HookedTransformer":
        return str(getattr(model.cfg, "original_architecture", None) or model.cfg.model_name)
    return type(getattr(model, "original_model", model)).__name__


def attention_class(model) -> str:
    """Class name of the attention component of layer 0 (``PositionEmbeddingsAttentionBridge`` ...)."""
    return type(model.blocks[0].attn).__name__


def single_position_capable(model) -> bool:
    """Whether exact per-step gradients can come from single-position passes over frozen keys/values.

    True for a ``TransformerBridge`` whose every layer uses the bridge's re-implemented rotary
    attention (``PositionEmbeddingsAttentionBridge``, which takes earlier keys/values through a
    ``layer_past`` cache and a 4-D mask) and no sliding window shorter than the context. A
    ``HookedTransformer`` always runs the full-graph path.
    """
    if model_class(model) != "TransformerBridge":
        return False
    rotary = "PositionEmbeddingsAttentionBridge"  # subclasses count
    if not all(any(c.__name__ == rotary for c in type(block.attn).__mro__) for block in model.blocks):
        return False
    config = hf_config(model)
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    sliding = window is not None or "sliding_attention" in (getattr(config, "layer_types", None) or ())
    return not sliding or (window is not None and window >= model.cfg.n_ctx)


def supports_attn_result(model) -> bool:
    """Whether the model can emit per-head outputs at ``blocks.L.attn.hook_result``."""
    if model_class(model) == "HookedTransformer":
        return True
    return bool(getattr(model.blocks[0].attn, "supports_attn_result", False))


def weight_processing(model) -> tuple[str, ...]:
    """The TransformerLens weight processing applied to ``model`` (empty: the checkpoint's numerics).

    ``HookedTransformer``: ``"fold_ln"`` (its norms have no weights: ``LNPre`` / ``RMSPre``) and
    ``"center_unembed"`` (every row of ``W_U`` has zero mean over the vocabulary); a bridge in
    ``enable_compatibility_mode()`` reports ``"compatibility_mode"``. Centred writing weights and
    folded value biases leave no trace in the model and are not reported.
    """
    if model_class(model) == "TransformerBridge":
        return ("compatibility_mode",) if getattr(model, "compatibility_mode", False) else ()
    applied = []
    if str(getattr(model.cfg, "normalization_type", "")).endswith("Pre"):
        applied.append("fold_ln")
    w_u = getattr(getattr(model, "unembed", None), "W_U", None)
    if w_u is not None:
        w_u = w_u.detach().float()  # [d_model, d_vocab]
        if float(w_u.mean(dim=-1).abs().max()) <= 1e-6 * max(float(w_u.abs().max()), 1e-12):
            applied.append("center_unembed")
    return tuple(applied)
