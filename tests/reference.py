"""Independent plain-PyTorch reference implementations, written against the *HF* model.

Nothing here imports gradellm_lens or TransformerLens: activations come from ordinary forward
hooks on ``q_proj`` / ``k_proj`` / ``v_proj`` / ``o_proj`` / ``self_attn`` of an unbridged
``transformers`` Llama-family model, and every formula is an explicit loop.
"""

from __future__ import annotations

import math

import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb


def _minmax(values: list[float]) -> list[float]:
    lo, hi = min(values), max(values)
    return [0.0 if hi == lo else (v - lo) / (hi - lo) for v in values]


def reference_grad_ellm(
    hf,
    ids: torch.Tensor,
    position: int,
    target_id: int,
    *,
    layers: list[int],
    gradient_source: str = "pre_o",
    spatial: str = "loosened",
    kv_expansion: str = "grouped",
    combine: str = "relu_then_sum",
):
    """Return ``(scores [S], per_head {layer: [H, S]})`` for one step, S = position + 1."""
    cfg = hf.config
    H, Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    dh = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
    store: dict = {}
    handles = []
    for L in layers:
        attn = hf.model.layers[L].self_attn
        for name in ("q_proj", "k_proj", "v_proj"):
            handles.append(getattr(attn, name).register_forward_hook(
                lambda m, i, o, key=(name, L): store.__setitem__(key, o)))
        handles.append(attn.o_proj.register_forward_pre_hook(lambda m, a, L=L: store.__setitem__(("pre_o", L), a[0])))
        handles.append(attn.register_forward_hook(lambda m, i, o, L=L: store.__setitem__(("post_o", L), o[0])))
    try:
        x = ids[None, : position + 1]
        out = hf(x, output_attentions=spatial == "pattern")
        logit = out.logits[0, position, target_id]
        grads = torch.autograd.grad(logit, [store[(gradient_source, L)] for L in layers])
    finally:
        for h in handles:
            h.remove()
    S = position + 1
    total_pre = [0.0] * S
    total = [0.0] * S
    per_head = {}
    for L, g in zip(layers, grads):
        q = store[("q_proj", L)][0, position].detach().double()
        k = store[("k_proj", L)][0].detach().double()
        v = store[("v_proj", L)][0].detach().double()
        gvec = g[0, position].detach().double()
        rep = H // Hkv
        if kv_expansion == "grouped":
            k = k.view(S, Hkv, dh).repeat_interleave(rep, dim=1).reshape(S, H * dh)
            v = v.view(S, Hkv, dh).repeat_interleave(rep, dim=1).reshape(S, H * dh)
        else:
            k, v = k.repeat(1, rep), v.repeat(1, rep)
        if spatial == "loosened":
            lam = _minmax([float(q @ k[i] / (q.norm() * k[i].norm())) for i in range(S)])
            lam = [[lam[i] for i in range(S)] for _ in range(H)]
        elif spatial == "softmax":
            logits = torch.tensor([float(q @ k[i]) / math.sqrt(H * dh) for i in range(S)])
            lam = [torch.softmax(logits, 0).tolist() for _ in range(H)]
        elif spatial == "none":
            lam = [[1.0] * S for _ in range(H)]
        elif spatial == "pattern":
            lam = out.attentions[L][0, :, position, :S].detach().double().tolist()
        elif spatial == "rope_minmax":
            attn = hf.model.layers[L].self_attn
            pos_ids = torch.arange(S)[None]
            cos, sin = hf.model.rotary_emb(store[("q_proj", L)], pos_ids)
            qh = store[("q_proj", L)].detach().view(1, S, H, dh).transpose(1, 2)
            kh = store[("k_proj", L)].detach().view(1, S, Hkv, dh).transpose(1, 2)
            qr, kr = apply_rotary_pos_emb(qh, kh, cos, sin)
            kr = kr.repeat_interleave(rep, dim=1)
            scale = getattr(attn, "scaling", 1 / math.sqrt(dh))
            mean = [sum(float(qr[0, h, position] @ kr[0, h, i]) * scale for h in range(H)) / H for i in range(S)]
            lam = [_minmax(mean) for _ in range(H)]
        else:
            raise ValueError(spatial)
        heads = torch.zeros(H, S, dtype=torch.float64)
        for h in range(H):
            sl = slice(h * dh, (h + 1) * dh)
            for i in range(S):
                heads[h, i] = float(gvec[sl] @ v[i, sl]) * lam[h][i]
        per_head[L] = heads
        layer_map = heads.sum(0).tolist()
        for i in range(S):
            total[i] += max(0.0, layer_map[i])
            total_pre[i] += layer_map[i]
    scores = total if combine == "relu_then_sum" else [max(0.0, t) for t in total_pre]
    return torch.tensor(scores, dtype=torch.float64), per_head
