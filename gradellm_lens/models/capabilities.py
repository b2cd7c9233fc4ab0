"""Load-time capability probe: do gradients reach the attention hook points we attribute through?

TransformerLens 4.x re-implements attention for most families (Llama, Mistral, Qwen, Gemma, GPT-2,
Pythia, Phi-3) and fires ``hook_z`` / ``hook_pattern`` on the live computation. For a few (OPT,
GPT-J, GPT-Neo) it delegates attention to Hugging Face and fires those hooks after the fact, so the
hooked tensors are not part of the autograd graph and every gradient method built on them would
silently return zeros. The probe runs a 3-token forward and backward and records what works.
The model may be a ``TransformerBridge`` or a TransformerLens 3.x ``HookedTransformer``
(:mod:`.adapter` says which, and answers everything that differs between them).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from ..errors import UnsupportedModelError
from . import adapter

SUPPORTED_FAMILIES = "Llama, Mistral, Qwen2/Qwen3, Gemma 2/3, Phi-3, GPT-2 and GPT-NeoX/Pythia"


@dataclass(frozen=True)
class ModelInfo:
    """Static facts about a booted model that the methods rely on.

    Attributes:
        name: model name as given to the loader (built-in name, hub id, path or class name).
        architecture: HF architecture class name (``config.architectures[0]``).
        attention_class: class name of the model's attention component.
        model_class: ``"TransformerBridge"`` or ``"HookedTransformer"``.
        weight_processing: TransformerLens weight processing applied (``"fold_ln"``,
            ``"center_unembed"``, ``"compatibility_mode"``); empty for the checkpoint's own numerics.
        n_layers: number of layers.
        n_heads: query heads per layer.
        n_kv_heads: key/value heads per layer.
        d_head: width of one head.
        d_model: width of the residual stream.
        n_ctx: context length.
        d_vocab: vocabulary size.
        grad_at_z: gradients reach ``blocks.L.attn.hook_z``.
        grad_at_pattern: gradients reach ``blocks.L.attn.hook_pattern``.
        supports_attn_result: the model can emit ``hook_result`` (per-head outputs).
        single_position: every layer's attention is the bridge's re-implemented rotary attention
            (which takes earlier keys/values through a ``layer_past`` cache and a 4-D mask) and no
            layer has a sliding window shorter than the context, so exact per-step gradients can
            come from single-position passes (:mod:`gradellm_lens.capture.single_position`).
    """

    name: str
    architecture: str
    attention_class: str
    model_class: adapter.ModelClass
    weight_processing: tuple[str, ...]
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


def probe(model, name: str | None = None) -> ModelInfo:
    """Run the capability probe on a ``TransformerBridge`` or ``HookedTransformer``.

    Backward hooks (TransformerLens' own gradient mechanism, which fires only where the hook
    point's output feeds the computation) are registered on layer 0's ``attn.hook_z`` and
    ``attn.hook_pattern``; the gradient of the summed last logits of a 3-token forward with respect
    to the embeddings (made a leaf tensor by a forward hook on ``hook_embed``) must pass both with
    finite values. ``torch.autograd.grad`` with respect to that leaf computes no parameter gradients,
    so ``.grad`` buffers are never touched and the probe costs a forward and half a backward.
    """
    cfg = model.cfg
    names = ["blocks.0.attn.hook_z", "blocks.0.attn.hook_pattern"]
    device = next(model.parameters()).device
    tokens = torch.tensor([[1, 2, 3]], device=device) % cfg.d_vocab
    seen: dict[str, bool] = {}
    embedded: list[torch.Tensor] = []

    def record(grad, hook, name):
        seen[name] = grad is not None and bool(torch.isfinite(grad).all())

    def leaf(tensor, hook):  # a fresh leaf: works with frozen parameters too
        embedded.append(tensor.detach().requires_grad_(True))
        return embedded[-1]

    bwd = [(n, lambda g, hook, n=n: record(g, hook, n)) for n in names]
    with torch.enable_grad(), model.hooks(fwd_hooks=[("hook_embed", leaf)], bwd_hooks=bwd):
        objective = model(tokens)[0, -1].sum()
        torch.autograd.grad(objective, embedded)
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    return ModelInfo(
        name=name or str(getattr(cfg, "model_name", type(model).__name__)),
        architecture=adapter.architecture(model),
        attention_class=adapter.attention_class(model),
        model_class=adapter.model_class(model),
        weight_processing=adapter.weight_processing(model),
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        n_kv_heads=int(n_kv),
        d_head=int(cfg.d_head),
        d_model=int(cfg.d_model),
        n_ctx=int(cfg.n_ctx),
        d_vocab=int(cfg.d_vocab),
        grad_at_z=seen.get(names[0], False),
        grad_at_pattern=seen.get(names[1], False),
        supports_attn_result=adapter.supports_attn_result(model),
        single_position=adapter.single_position_capable(model),
    )


def model_info(model, name: str | None = None, *, require_gradients: bool = True) -> ModelInfo:
    """Cached :func:`probe` result for ``model``; raise if gradients do not reach attention hooks.

    Raises:
        InvalidInputError: ``model`` is not a ``TransformerBridge`` or ``HookedTransformer`` (a name,
            an unbooted HF model, None), or has no tokenizer.
        UnsupportedModelError: gradients do not reach the attention hooks (``require_gradients``).
    """
    info = _INFO.get(model) if isinstance(model, torch.nn.Module) else None
    if info is None:
        adapter.model_class(model)  # raises for anything that is not an accepted model
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
