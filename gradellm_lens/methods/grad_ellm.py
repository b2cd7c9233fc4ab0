r"""Grad-ELLM: gradient-weighted, loosened-attention token attribution (Huang & Chan, arXiv 2601.03089).

For the target scalar :math:`y` of step :math:`t` (by default the pre-softmax logit of the token
generated after position :math:`p`), and each selected attention layer :math:`\ell`:

.. math::

    g^{\ell} &= \partial y / \partial o^{\ell}_{p}
        && \text{channel weights: gradient at the attention output of the last position} \\
    \lambda^{\ell}_{i} &= \operatorname{minmax}_{i \le p}\, \cos(q^{\ell}_{p}, k^{\ell}_{i})
        && \text{spatial weights: "loosened" attention} \\
    c^{\ell,h}_{i} &= \textstyle\sum_{c \in h} g^{\ell}_{c}\, v^{\ell}_{i,c}\, \lambda^{\ell}_{i}
        && \text{per-head contribution of token } i \\
    H_i &= \operatorname{ReLU}\big(\textstyle\sum_{\ell} \sum_h c^{\ell,h}_{i}\big)
        && \text{token score (default: every layer, summed, then ReLU)}

All tensors come from TransformerLens hook points of the unmodified model: ``attn.hook_q`` /
``hook_k`` / ``hook_v`` (raw projections, **before RoPE**, flattened across heads) and the
gradient at ``attn.hook_z`` (the o_proj *input*, where :math:`o_p = \sum_i A_{p,i} v_i` holds per
head). Scores are computed in float32 whatever the model dtype.

Computation (:func:`~gradellm_lens.capture.step_gradients`): the gradient is needed only at each
step's own position :math:`p`, so all steps and all selected layers come from one no-grad forward
over the longest prefix (which also records q, k, v) and one batch of single-position passes over
the frozen earlier keys/values with one backward (``gradient_path="single_position"``, exact).
Where a model or setting does not support that, one forward with gradients over the prefix and
one batched backward run instead (``"full_graph"``); ``gradient_path="auto"`` (default) picks, and
``MethodOutput.diagnostics["gradient_path"]`` records which ran.

Variant switches (:class:`GradEllmOptions`; the paper's choices and those of the released code):

``gradient_source``
    ``"pre_o"`` (default): gradient at ``hook_z``, the basis in which the value decomposition is
    exact. ``"post_o"``: gradient at ``hook_attn_out`` (after o_proj), as in the code released
    with the paper; mixes the d_model basis with the value basis, so it needs
    ``d_model == n_heads * d_head``.
``spatial``
    ``"loosened"`` (default): min-max cosine above. ``"softmax"``: ``softmax(q_p·k_i/√D)`` on the
    same flattened pre-RoPE vectors. ``"pattern"``: the model's own per-head attention pattern
    ``A[h, p, i]`` (post-RoPE; then :math:`\sum_i c_i = g \cdot o_p`, gradient x activation).
    ``"rope_minmax"``: min-max of the head-mean of the post-RoPE scaled scores. ``"none"``:
    :math:`\lambda = 1` (gradient x value ablation).
``kv_expansion``
    ``"grouped"`` (default): each key/value head serves its group of query heads, as HF's
    ``repeat_kv``. ``"legacy_repeat"``: tile the whole flattened k/v vector (the released
    code's GQA handling, which pairs heads wrongly).
``layers``
    ``"all"`` (default), an int ``K`` (last K layers; ``1`` is the last layer, the released code's
    choice), a list of layer indices (negative counts from the end).
``combine``
    ``"sum_then_relu"`` (default: the layers' maps are summed, then ReLU'd once, as in Grad-ECLIP's
    text branch) or ``"relu_then_sum"`` (ReLU per layer, then sum, as in the released code and
    Grad-ECLIP's image branch). The two differ only with several layers.
``share_forward``
    ``True`` (default): all steps in one computation. ``False``: one computation per step (each
    with its own prefix), which bounds the peak memory of the full-graph path by one step's.
``gradient_path``
    ``"auto"`` (default), ``"single_position"`` (refused where unsupported) or ``"full_graph"``;
    the results agree to float rounding.

Named variants: ``default``; ``reference`` (the released code: post_o + legacy_repeat on the last
layer); ``last_layer`` (this package's 0.2 default: the default switches on the last layer only);
``pattern``; ``rope``; ``softmax``; ``no_spatial``.

Why the default is every layer, summed before the ReLU: on the π-Soft-NS/NC evaluation of the
study in ``analyses/results/grad-ellm-study/`` (plain prompts, the dataset text perturbed, paired
bootstrap CIs over examples), that configuration beats the ``random`` baseline and its own shuffled
scores on both metrics on SST-2 for SmolLM2-135M-Instruct and Qwen2.5-Coder-0.5B-Instruct and on
TellMeWhy for Qwen. The last layer alone, the released code's choice, is at chance on Qwen.

The per-head decomposition ``layer_head[t, l, h, i] = c^{l,h}_i`` is returned before any ReLU, so
``layer_head.sum(head)`` is each layer's map before its ReLU. For ``post_o`` the "heads" are
blocks of ``d_head`` output channels, not attention heads.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ..capture import GRADIENT_PATHS, hook_name, step_gradients
from ..errors import InvalidInputError, check_choice
from ..numerics import masked_minmax, prefix_mask
from ..targets import Step
from ..tensor_types import TokenIds
from .base import AttributionMethod, MethodOutput, _pad_positions, check_choices, check_flag
from .layers import LayerSpec, check_layer_spec, resolve_layers

GradientSource = Literal["pre_o", "post_o"]
Spatial = Literal["loosened", "softmax", "pattern", "rope_minmax", "none"]
KVExpansion = Literal["grouped", "legacy_repeat"]
Combine = Literal["relu_then_sum", "sum_then_relu"]

_CHOICES = {
    "gradient_source": ("pre_o", "post_o"),
    "spatial": ("loosened", "softmax", "pattern", "rope_minmax", "none"),
    "kv_expansion": ("grouped", "legacy_repeat"),
    "combine": ("relu_then_sum", "sum_then_relu"),
    "gradient_path": GRADIENT_PATHS,
}


@dataclass(frozen=True)
class GradEllmOptions:
    """Grad-ELLM's switches; see the module docstring for what each value means."""

    gradient_source: GradientSource = "pre_o"
    spatial: Spatial = "loosened"
    kv_expansion: KVExpansion = "grouped"
    layers: LayerSpec = "all"
    combine: Combine = "sum_then_relu"
    share_forward: bool = True
    gradient_path: str = "auto"

    def __post_init__(self) -> None:
        check_choices(self, _CHOICES, "Grad-ELLM")
        check_flag(self, "share_forward", "Grad-ELLM")
        object.__setattr__(self, "layers", check_layer_spec(self.layers))

    def resolve_layers(self, n_layers: int) -> tuple[int, ...]:
        """Absolute, sorted, de-duplicated layer indices; out-of-range indices raise."""
        return resolve_layers(self.layers, n_layers)


VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "reference": {"gradient_source": "post_o", "kv_expansion": "legacy_repeat", "layers": 1, "combine": "relu_then_sum"},
    "last_layer": {"layers": 1, "combine": "relu_then_sum"},
    "pattern": {"spatial": "pattern"},
    "rope": {"spatial": "rope_minmax"},
    "softmax": {"spatial": "softmax"},
    "no_spatial": {"spatial": "none"},
}


def expand_kv(x: Tensor, n_heads: int, mode: KVExpansion) -> Tensor:
    """``[pos, n_kv, d_head]`` -> ``[pos, n_heads, d_head]`` (grouped) or tiled (legacy)."""
    n_kv = x.shape[-2]
    if n_kv == n_heads:
        return x
    if n_heads % n_kv:
        raise InvalidInputError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv}.")
    if mode == "grouped":
        return x.repeat_interleave(n_heads // n_kv, dim=-2)
    pos, _, d_head = x.shape
    return x.reshape(pos, n_kv * d_head).repeat(1, n_heads // n_kv).reshape(pos, n_heads, d_head)


class GradEllm(AttributionMethod):
    """Grad-ELLM (see module docstring for the formula and variants)."""

    method_name: ClassVar[str] = "grad_ellm"
    Options: ClassVar[type] = GradEllmOptions
    throughput_options: ClassVar[frozenset[str]] = frozenset({"share_forward", "gradient_path"})
    variants: ClassVar[dict[str, dict[str, Any]]] = VARIANTS

    def __init__(self, model, *, variant: str = "default", **options: Any) -> None:
        check_choice("grad_ellm variant", variant, VARIANTS)
        self.variant = variant
        super().__init__(model, **{**VARIANTS[variant], **options})
        self.layers = self.options.resolve_layers(self.info.n_layers)
        if self.options.gradient_source == "post_o" and self.info.d_model != self.info.n_heads * self.info.d_head:
            raise InvalidInputError(
                f"gradient_source='post_o' needs d_model == n_heads * d_head, but this model has d_model="
                f"{self.info.d_model} and {self.info.n_heads} x {self.info.d_head}; use gradient_source='pre_o'."
            )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "variant": self.variant, "layers": list(self.layers)}

    def _hook_names(self, layer: int) -> dict[str, str]:
        names = {kind: hook_name(kind, layer) for kind in ("q", "k", "v")}
        names["grad"] = hook_name("z" if self.options.gradient_source == "pre_o" else "attn_out", layer)
        if self.options.spatial == "pattern":
            names["spatial"] = hook_name("pattern", layer)
        elif self.options.spatial == "rope_minmax":
            names["spatial"] = hook_name("attn_scores", layer)
        return names

    def _attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        if self.options.share_forward:
            return self._attribute_shared(tokens, steps)
        outs = [self._attribute_shared(tokens[: s.position + 1], [s]) for s in steps]
        n = tokens.shape[0]
        return MethodOutput(
            scores=torch.cat([_pad_positions(o.scores, n) for o in outs]),
            layer_head=torch.cat([_pad_positions(o.layer_head, n) for o in outs]),
            layers=self.layers,
            diagnostics={"gradient_path": outs[0].diagnostics["gradient_path"]},
        )

    def _attribute_shared(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        """All steps from one gradient computation over ``tokens[: last position + 1]``."""
        end = max(s.position for s in steps) + 1
        positions = torch.tensor([s.position for s in steps], device=tokens.device)
        names = {layer: self._hook_names(layer) for layer in self.layers}
        captured = step_gradients(
            self.model,
            tokens,
            steps,
            grad_names=[n["grad"] for n in names.values()],
            act_names=[v for n in names.values() for k, v in n.items() if k != "grad"],
            path=self.options.gradient_path,
        )
        valid = prefix_mask(positions, end)  # [step, pos]
        per_layer = [self._layer_contributions(captured, names[layer], positions, valid) for layer in self.layers]
        layer_head = torch.stack(per_layer, dim=1)  # [step, layer, head, pos]
        layer_maps = layer_head.sum(dim=2)  # [step, layer, pos]
        if self.options.combine == "relu_then_sum":
            scores = layer_maps.clamp(min=0).sum(dim=1)
        else:
            scores = layer_maps.sum(dim=1).clamp(min=0)
        return MethodOutput(
            scores=scores, layer_head=layer_head, layers=self.layers, diagnostics={"gradient_path": captured.path}
        )

    def _layer_contributions(self, captured, names: dict[str, str], positions: Tensor, valid: Tensor) -> Tensor:
        """``c[step, head, pos]`` for one layer (float32, zero outside each step's prefix)."""
        opts, info = self.options, self.info
        n_heads, d_head = info.n_heads, info.d_head
        act = captured.activations
        q = act[names["q"]][0].float()  # [pos, H, d]
        k = expand_kv(act[names["k"]][0].float(), n_heads, opts.kv_expansion)
        v = expand_kv(act[names["v"]][0].float(), n_heads, opts.kv_expansion)
        # gradient at each step's own position: [step, H, d] (hook_z) or [step, d_model] (hook_attn_out)
        g = captured.gradients[names["grad"]].float().reshape(len(positions), n_heads, d_head)
        gv = torch.einsum("thd,shd->ths", g, v)  # [step, H, pos]
        spatial = self._spatial(q, k, act.get(names.get("spatial", "")), positions, valid)
        return torch.where(valid[:, None, :], gv * spatial, torch.zeros_like(gv))

    def _spatial(self, q: Tensor, k: Tensor, hooked: Tensor | None, positions: Tensor, valid: Tensor) -> Tensor:
        """Spatial weights ``[step, 1 or H, pos]``."""
        kind = self.options.spatial
        if kind == "none":
            return torch.ones_like(valid, dtype=torch.float32)[:, None, :]
        if kind == "pattern":
            return hooked[0][:, positions, :].float().transpose(0, 1)  # [step, H, pos]
        if kind == "rope_minmax":
            scores = hooked[0][:, positions, :].float().mean(dim=0)  # [step, pos]
            scores = torch.where(valid, scores, torch.zeros_like(scores))
            return masked_minmax(scores, valid)[:, None, :]
        q_last = q.flatten(1)[positions]  # [step, D]
        keys = k.flatten(1)  # [pos, D]
        if kind == "loosened":
            cos = torch.nn.functional.cosine_similarity(q_last[:, None, :], keys[None, :, :], dim=-1, eps=1e-8)
            return masked_minmax(cos, valid)[:, None, :]
        logits = (q_last @ keys.T) / math.sqrt(keys.shape[-1])
        return torch.softmax(logits.masked_fill(~valid, float("-inf")), dim=-1)[:, None, :]


def grad_ellm_options(variant: str = "default", **overrides: Any) -> GradEllmOptions:
    """The resolved options of a named variant (with overrides)."""
    check_choice("grad_ellm variant", variant, VARIANTS)
    return dataclasses.replace(GradEllmOptions(**VARIANTS[variant]), **overrides)
