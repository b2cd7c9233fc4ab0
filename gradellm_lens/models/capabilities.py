"""Load-time capability probe: do gradients reach the attention hook points we attribute through?

TransformerLens 4.x re-implements attention for most families (Llama, Mistral, Qwen, Gemma, GPT-2,
Pythia, Phi-3) and fires ``hook_z`` / ``hook_pattern`` on the live computation. For a few (OPT,
GPT-J, GPT-Neo) it delegates attention to Hugging Face and fires those hooks after the fact, so the
hooked tensors are not part of the autograd graph and every gradient method built on them would
silently return zeros. The probe runs a 3-token forward and backward and records what works.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from ..errors import InvalidInputError, UnsupportedModelError

SUPPORTED_FAMILIES = "Llama, Mistral, Qwen2/Qwen3, Gemma 2/3, Phi-3, GPT-2 and GPT-NeoX/Pythia"


@dataclass(frozen=True)
class ModelInfo:
    """Static facts about a booted model that the methods rely on.

    Attributes:
        name: model name as given to the loader (built-in name, hub id, path or class name).
        architecture: HF architecture class name (``config.architectures[0]``).
        attention_class: class name of the bridge's attention component.
        n_layers, n_heads, n_kv_heads, d_head, d_model, n_ctx, d_vocab: shape facts.
        grad_at_z: gradients reach ``blocks.L.attn.hook_z``.
        grad_at_pattern: gradients reach ``blocks.L.attn.hook_pattern``.
        supports_attn_result: the bridge can emit ``hook_result`` (per-head outputs).
        single_position: every layer's attention is the bridge's re-implemented rotary attention
            (which takes earlier keys/values through a ``layer_past`` cache and a 4-D mask) and no
            layer has a sliding window shorter than the context, so exact per-step gradients can
            come from single-position passes (:mod:`gradellm_lens.capture.single_position`).
    """

    name: str
    architecture: str
    attention_class: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_model: int
    n_ctx: int
    d_vocab: int
    grad_at_z: bool
    grad_at_pattern: bool
    supports_attn_result: bool
    single_position: bool = False

    @property
    def gradients_supported(self) -> bool:
        return self.grad_at_z and self.grad_at_pattern


_INFO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _architecture(model) -> str:
    config = getattr(model, "original_model", None)
    config = getattr(config, "config", None)
    archs = getattr(config, "architectures", None) or [type(getattr(model, "original_model", model)).__name__]
    return str(archs[0])


def probe(model, name: str | None = None) -> ModelInfo:
    """Run the capability probe on a booted ``TransformerBridge``.

    Backward hooks (TransformerLens' own gradient mechanism) are registered on layer 0's
    ``attn.hook_z`` and ``attn.hook_pattern``; a 3-token forward and a backward of the summed last
    logits must fire both with finite gradients. Existing parameter ``.grad`` tensors are restored
    untouched afterwards (the backward runs on cleared buffers, so nothing accumulates into them).
    """
    cfg = model.cfg
    names = ["blocks.0.attn.hook_z", "blocks.0.attn.hook_pattern"]
    device = next(model.parameters()).device
    tokens = torch.tensor([[1, 2, 3]], device=device) % cfg.d_vocab
    seen: dict[str, bool] = {}

    def record(grad, hook, name):
        seen[name] = grad is not None and bool(torch.isfinite(grad).all())

    bwd = [(n, lambda g, hook, n=n: record(g, hook, n)) for n in names]
    grads_before = [p.grad for p in model.parameters()]
    for param in model.parameters():  # backward would accumulate into (and so change) existing grads
        param.grad = None
    # a frozen model (requires_grad_(False)) still has a graph from its embeddings, as every method's capture does
    leaf = [("hook_embed", lambda x, hook=None: x if x.requires_grad else x.detach().requires_grad_(True))]
    try:
        with torch.enable_grad(), model.hooks(fwd_hooks=leaf, bwd_hooks=bwd):
            model(tokens)[0, -1].sum().backward()
    finally:
        for param, grad in zip(model.parameters(), grads_before):
            param.grad = grad
    attn = model.blocks[0].attn
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    return ModelInfo(
        name=name or str(getattr(cfg, "model_name", type(model).__name__)),
        architecture=_architecture(model),
        attention_class=type(attn).__name__,
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        n_kv_heads=int(n_kv),
        d_head=int(cfg.d_head),
        d_model=int(cfg.d_model),
        n_ctx=int(cfg.n_ctx),
        d_vocab=int(cfg.d_vocab),
        grad_at_z=seen.get(names[0], False),
        grad_at_pattern=seen.get(names[1], False),
        supports_attn_result=bool(getattr(attn, "supports_attn_result", False)),
        single_position=_single_position_capable(model),
    )


def _single_position_capable(model) -> bool:
    """See :attr:`ModelInfo.single_position`."""
    try:
        from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
            PositionEmbeddingsAttentionBridge,
        )
    except ImportError:
        return False
    blocks = getattr(model, "blocks", None)
    if not blocks or not all(isinstance(getattr(b, "attn", None), PositionEmbeddingsAttentionBridge) for b in blocks):
        return False
    config = getattr(getattr(model, "original_model", None), "config", None)
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    sliding = window is not None or "sliding_attention" in (getattr(config, "layer_types", None) or ())
    return not sliding or (window is not None and window >= model.cfg.n_ctx)


def model_info(model, name: str | None = None, *, require_gradients: bool = True) -> ModelInfo:
    """Cached :func:`probe` result for ``model``; raise if gradients do not reach attention hooks.

    Raises:
        InvalidInputError: ``model`` is not a TransformerBridge (a name, an unbooted HF model, None).
        UnsupportedModelError: gradients do not reach the attention hooks (``require_gradients``).
    """
    if not (hasattr(model, "hooks") and hasattr(model, "cfg") and hasattr(model, "tokenizer")):
        hint = f"load_model({model!r})" if isinstance(model, str) else "load_model(...)"
        if isinstance(model, torch.nn.Module):
            hint = "load_model(hf_model, tokenizer=tokenizer) (a transformers model is booted in place)"
        raise InvalidInputError(
            f"Expected a TransformerBridge from gradellm_lens.load_model, got {type(model).__name__}; "
            f"load it first with {hint}."
        )
    info = _INFO.get(model)
    if info is None:
        info = probe(model, name)
        _INFO[model] = info
    if require_gradients and not info.gradients_supported:
        raise UnsupportedModelError(
            f"Architecture {info.architecture} (attention component {info.attention_class}) is not "
            "supported: TransformerLens hands its attention to Hugging Face, so gradients never reach "
            "attn.hook_z / attn.hook_pattern and every gradient attribution would be silently zero. "
            f"Supported families: {SUPPORTED_FAMILIES}."
        )
    return info
