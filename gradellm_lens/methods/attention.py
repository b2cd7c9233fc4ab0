r"""Attention-based baselines: raw attention, attention rollout and attention x gradient.

All three read the model's own post-softmax attention pattern :math:`A^{\ell}_{h}[q, k]`
(``blocks.L.attn.hook_pattern``, per query head, so grouped-query models need no expansion). For
the step explaining the token generated after position :math:`p`, the **last-query row**
:math:`q = p` over keys :math:`i \le p` is used. The model is causal, so row :math:`p` of a
forward over the longest prefix equals row :math:`p` of a forward over ``tokens[: p + 1]``: every
method here scores all steps of a sequence from **one forward** (plus one batched backward for
attention x gradient).

``attention`` (raw attention)
    :math:`s_i = \operatorname{mean}_h A^{L}_{h}[p, i]` for the last layer :math:`L`
    (``layers="last"``, default), or :math:`\operatorname{mean}_{\ell, h} A^{\ell}_{h}[p, i]` over
    all layers (``layers="mean"``). Independent of the target. ``layer_head`` holds the pattern
    rows :math:`A^{\ell}_{h}[p, i]` of the layers used.

``attention_rollout`` (Abnar & Zuidema, 2020)
    With the head mean :math:`\bar A_\ell = \operatorname{mean}_h A^{\ell}_{h}`, the residual
    connection is modelled as :math:`\hat A_\ell = (1 - r)\,\bar A_\ell + r\,I` with
    :math:`r = 0.5` (option ``residual_weight``), rows re-normalised to sum to 1 (a no-op for exact
    causal softmax rows, kept so that the definition does not depend on it), and
    :math:`R = \hat A_{L-1} \cdots \hat A_1 \hat A_0` (layer 0 applied first). The score is the
    last-query row :math:`s_i = R[p, i]`; it sums to 1 over the prefix. Choice documented here:
    no final softmax (ReAGent applies one on top) and no discarding of the BOS column.

``attention_x_gradient``
    Per head and selected layer, :math:`c^{\ell,h}_i = A^{\ell}_{h}[p, i]\,
    \partial y / \partial A^{\ell}_{h}[p, i]` with the gradient taken at ``hook_pattern`` (so
    through the value mixing and every later layer), and
    :math:`s_i = \sum_{\ell \in \text{layers}} \sum_h \operatorname{ReLU}(c^{\ell,h}_i)`
    (positive part per head, then summed). ``layer_head[t, l, h, i] = c^{l,h}_i`` before the ReLU.
    ``layers`` takes the same values as Grad-ELLM's (an int K = last K layers, a list of indices, or
    ``"all"``, the default). Only the step's own query row :math:`p` is differentiated, so all
    steps and layers come from single-position passes over frozen keys/values where the model
    supports them (:func:`~gradellm_lens.capture.step_gradients`; option ``gradient_path``, recorded
    in ``MethodOutput.diagnostics``), else from one forward and one batched backward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ..capture import GRADIENT_PATHS, hook_name, record_activations, step_gradients
from ..errors import InvalidInputError
from ..targets import Step
from ..tensor_types import AttentionPatterns, TokenIds
from .base import AttributionMethod, MethodOutput, check_choices
from .layers import LayerSpec, check_layer_spec, resolve_layers
from .objectives import shared_prefix, step_rows

AttentionLayers = Literal["last", "mean"]


@torch.no_grad()
def attention_patterns(model, tokens: TokenIds, layers: Sequence[int]) -> AttentionPatterns:
    """Post-softmax patterns ``[layer, head, query, key]`` (float32) of ``layers`` from one forward.

    Recorded with plain hook-point hooks, not ``run_with_cache``: that asks the HF model for
    ``output_attentions``, which makes transformers install permanent output-capturing hooks.
    """
    names = [hook_name("pattern", layer) for layer in layers]
    _, acts = record_activations(model, tokens[None], names)
    return torch.stack([acts[name][0].float() for name in names])


def rollout(head_mean: Tensor, residual_weight: float = 0.5) -> Tensor:
    """Attention rollout ``R = Â_{L-1} ... Â_0`` of head-mean patterns ``[layer, query, key]``.

    ``Â_l = (1 - r) A_l + r I`` with rows re-normalised to sum to one; returns ``[query, key]``.
    """
    n = head_mean.shape[-1]
    eye = torch.eye(n, dtype=head_mean.dtype, device=head_mean.device)
    out = eye
    for layer_pattern in head_mean:
        mixed = (1.0 - residual_weight) * layer_pattern + residual_weight * eye
        out = (mixed / mixed.sum(dim=-1, keepdim=True)) @ out
    return out


@dataclass(frozen=True)
class AttentionOptions:
    """Options of :class:`Attention`.

    Attributes:
        layers: ``"last"`` (the last layer's heads, default) or ``"mean"`` (mean over all layers).
    """

    layers: AttentionLayers = "last"

    def __post_init__(self) -> None:
        if self.layers not in ("last", "mean"):
            raise InvalidInputError(f"attention option layers={self.layers!r} is invalid; use 'last' or 'mean'.")


class Attention(AttributionMethod):
    """Raw attention: head-mean last-query attention row of the last layer (or mean over layers)."""

    method_name: ClassVar[str] = "attention"
    Options: ClassVar[type] = AttentionOptions

    def _attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        n_layers = self.info.n_layers
        layers = (n_layers - 1,) if self.options.layers == "last" else tuple(range(n_layers))
        patterns = attention_patterns(self.model, shared_prefix(tokens, steps), layers)
        layer_head = step_rows(patterns, steps)  # [step, layer, head, key]
        return MethodOutput(scores=layer_head.mean(dim=(1, 2)), layer_head=layer_head, layers=layers)


@dataclass(frozen=True)
class AttentionRolloutOptions:
    """Options of :class:`AttentionRollout`.

    Attributes:
        residual_weight: weight ``r`` of the identity in ``Â = (1 - r) A + r I`` (0.5 in Abnar &
            Zuidema), in ``[0, 1]``.
    """

    residual_weight: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.residual_weight, bool) or not 0.0 <= float(self.residual_weight) <= 1.0:
            raise InvalidInputError(f"residual_weight must be a number in [0, 1], got {self.residual_weight!r}.")


class AttentionRollout(AttributionMethod):
    """Attention rollout (Abnar & Zuidema): product of residual-mixed head-mean patterns, last-query row."""

    method_name: ClassVar[str] = "attention_rollout"
    Options: ClassVar[type] = AttentionRolloutOptions

    def _attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        patterns = attention_patterns(self.model, shared_prefix(tokens, steps), range(self.info.n_layers))
        matrix = rollout(patterns.mean(dim=1), float(self.options.residual_weight))
        return MethodOutput(scores=step_rows(matrix, steps))


@dataclass(frozen=True)
class AttentionXGradientOptions:
    """Options of :class:`AttentionXGradient`.

    Attributes:
        layers: layers summed over, as Grad-ELLM's ``layers``: an int K (last K layers), a list of
            layer indices (negative counts from the end) or ``"all"`` (default).
        gradient_path: ``"auto"`` (default), ``"single_position"`` or ``"full_graph"`` (as Grad-ELLM's).
    """

    layers: LayerSpec = "all"
    gradient_path: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", check_layer_spec(self.layers))
        check_choices(self, {"gradient_path": GRADIENT_PATHS}, "attention_x_gradient")


class AttentionXGradient(AttributionMethod):
    """Attention x gradient: ReLU(A ⊙ ∂y/∂A) at the last query row, summed over heads and layers."""

    method_name: ClassVar[str] = "attention_x_gradient"
    Options: ClassVar[type] = AttentionXGradientOptions
    throughput_options: ClassVar[frozenset[str]] = frozenset({"gradient_path"})

    def __init__(self, model, **options: Any) -> None:
        super().__init__(model, **options)
        self.layers = resolve_layers(self.options.layers, self.info.n_layers)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "layers": list(self.layers)}

    def _attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        names = [hook_name("pattern", layer) for layer in self.layers]
        captured = step_gradients(self.model, tokens, steps, grad_names=names, path=self.options.gradient_path)
        # own query row of every step: A[p, :] and ∂y/∂A[p, :], each [step, head, key]
        per_layer = [captured.at_steps[name].float() * captured.gradients[name].float() for name in names]
        layer_head = torch.stack(per_layer, dim=1)  # [step, layer, head, key]
        return MethodOutput(
            scores=layer_head.clamp(min=0).sum(dim=(1, 2)),
            layer_head=layer_head,
            layers=self.layers,
            diagnostics={"gradient_path": captured.path},
        )
