r"""Per-(layer, head) importance: from Grad-ELLM's head maps, and an activation-norm baseline.

**Grad-ELLM head importance.** Grad-ELLM's decomposition ``layer_head[t, l, h, i]`` is the
contribution :math:`c^{l,h}_{t,i} = \sum_{c \in h} g^{l}_{t,c}\, v^{l}_{i,c}\, \lambda^{l}_{t,i}`
of token :math:`i` through query head :math:`h` of layer :math:`l` at step :math:`t`, before any
ReLU (see :mod:`gradellm_lens.methods.grad_ellm`). A head's importance at step :math:`t` reduces
its map over the prefix positions :math:`i \le p_t` (``measure``):

``"positive"`` (default)
    :math:`\sum_i \operatorname{ReLU}(c_{t,i})`: the head's positive mass, i.e. what it adds to
    the token scores that survive the per-layer ReLU (a head whose map is mostly negative counts
    little).
``"net_abs"``
    :math:`|\sum_i c_{t,i}|`: the magnitude of the head's net contribution (cancellation between
    tokens lowers it).
``"net"``
    :math:`\sum_i c_{t,i}` (signed).
``"abs"``
    :math:`\sum_i |c_{t,i}|`: total mass of either sign.

The importance of an example is the mean over its steps; :func:`dataset_head_importance` averages
examples, each first divided by its total absolute importance (``normalise=True``) so that every
example weighs the same. Use ``GradEllm(model, layers="all")`` (as
:func:`grad_ellm_head_importance` does) to score every layer; otherwise only the selected layers
are covered (``HeadImportance.layers``).

**GQA.** The maps, and hence :class:`HeadImportance`, are indexed by **query** head (the gradient
at ``attn.hook_z`` is per query head; values are expanded from the KV heads). Under
``kv_expansion="legacy_repeat"`` the values are paired with the wrong KV heads, so the "head" axis
is still the query head but its values are not the ones the model used. ``gradient_source=
"post_o"`` maps are blocks of o_proj *output* channels, not heads, and are refused here.
:meth:`HeadImportance.to_kv_groups` aggregates query heads to their KV groups (:mod:`.gqa`).

**Output-norm baseline** (:func:`output_norm_importance`): the norm of head :math:`h`'s write to
the residual stream at the explained position(s),
:math:`\lVert z^{l}_{p,h} W_O^{l,h} \rVert_2` (``z`` from ``attn.hook_z``, ``W_O^{l,h}`` the
head's ``d_head x d_model`` slice of o_proj), averaged over the steps' positions. It ignores the
target; it is the "how loud is this head" ranking to compare Grad-ELLM's against.
:func:`random_importance` is the chance level (seeded uniform scores).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from ..capture import hook_name, record_activations
from ..errors import InvalidInputError, NumericalError, check_choice
from ..methods.base import MethodOutput
from ..methods.grad_ellm import GradEllm
from ..models.capabilities import model_info
from ..result import AttributionResult
from ..targets import Step, Target, as_steps
from ..tensor_types import HeadScores, StepLayerHeadScores, TokenIds
from .gqa import GroupReduce, aggregate_kv_groups

ImportanceMeasure = Literal["positive", "net_abs", "net", "abs"]
IMPORTANCE_MEASURES: tuple[str, ...] = ("positive", "net_abs", "net", "abs")
HeadUnit = Literal["query", "kv"]


@dataclass(frozen=True)
class HeadImportance:
    """One score per (layer, head).

    Attributes:
        scores: ``[layer, head]`` float32 scores (row ``j`` is model layer ``layers[j]``).
        layers: model layer index of each row.
        measure: how the scores were obtained (``"positive"``, ``"output_norm"``,
            ``"zero_ablation_drop"``, ...).
        unit: ``"query"`` (query heads) or ``"kv"`` (KV groups, see :meth:`to_kv_groups`).
    """

    scores: HeadScores
    layers: tuple[int, ...]
    measure: str
    unit: HeadUnit = "query"

    def __post_init__(self) -> None:
        scores = torch.as_tensor(self.scores).detach().float().cpu()
        if scores.ndim != 2:
            raise InvalidInputError(f"Head importance scores must be [layer, head], got shape {tuple(scores.shape)}.")
        layers = tuple(int(x) for x in self.layers)
        if len(layers) != scores.shape[0]:
            raise InvalidInputError(f"{len(layers)} layer indices for {scores.shape[0]} rows of scores.")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "layers", layers)

    @property
    def heads(self) -> list[tuple[int, int]]:
        """All ``(layer, head)`` pairs, row-major."""
        return [(layer, h) for layer in self.layers for h in range(self.scores.shape[1])]

    @property
    def values(self) -> Tensor:
        """Flat ``[layer * head]`` scores in the order of :attr:`heads`."""
        return self.scores.flatten()

    def __getitem__(self, head: tuple[int, int]) -> float:
        layer, h = head
        if layer not in self.layers:
            raise InvalidInputError(f"Layer {layer} is not covered (layers {self.layers[0]}..{self.layers[-1]}).")
        return float(self.scores[self.layers.index(layer), h])

    def ranking(self, *, descending: bool = True) -> list[tuple[int, int]]:
        """``(layer, head)`` pairs from most to least important (NaN last; ties in index order)."""
        values = self.values.clone()
        nan = torch.isnan(values)
        values[nan] = float("-inf") if descending else float("inf")
        order = torch.sort(values, descending=descending, stable=True).indices
        heads = self.heads
        return [heads[int(i)] for i in order]

    def top(self, k: int) -> list[tuple[int, int]]:
        """The ``k`` most important heads."""
        return self.ranking()[:k]

    def to_kv_groups(self, n_kv_heads: int, reduce: GroupReduce = "sum") -> HeadImportance:
        """Aggregate query heads to KV groups (``head`` axis becomes the KV head index)."""
        if self.unit != "query":
            raise InvalidInputError("These scores are already per KV group.")
        grouped = aggregate_kv_groups(self.scores, n_kv_heads, reduce)
        return HeadImportance(grouped, self.layers, f"{self.measure}:{reduce}", unit="kv")

    def magnitude(self) -> HeadImportance:
        """``|scores|``: how much each head matters, whatever the sign of its effect."""
        return HeadImportance(self.scores.abs(), self.layers, f"|{self.measure}|", self.unit)

    def rows(self) -> list[dict[str, Any]]:
        """``[{"layer", "head", "score", "rank"}]`` (rank 1 = most important), for tables."""
        rank = {head: j + 1 for j, head in enumerate(self.ranking())}
        return [{"layer": layer, "head": h, "score": self[layer, h], "rank": rank[layer, h]} for layer, h in self.heads]


def _reduce_positions(c: Tensor, measure: ImportanceMeasure) -> Tensor:
    """``c [..., pos]`` (NaN outside the prefix) -> ``[...]``."""
    c = torch.nan_to_num(c.float(), nan=0.0)
    if measure == "positive":
        return c.clamp(min=0).sum(-1)
    if measure == "abs":
        return c.abs().sum(-1)
    net = c.sum(-1)
    return net.abs() if measure == "net_abs" else net


def head_importance(
    source: AttributionResult | MethodOutput | StepLayerHeadScores,
    measure: ImportanceMeasure = "positive",
    *,
    layers: Sequence[int] | None = None,
    steps: Sequence[int] | None = None,
) -> HeadImportance:
    """Grad-ELLM head importance of one example (mean over its steps).

    Args:
        source: an :class:`AttributionResult` or :class:`MethodOutput` with ``layer_head``, or the
            ``[step, layer, head, pos]`` tensor itself (then pass ``layers``).
        measure: ``"positive"``, ``"net_abs"``, ``"net"`` or ``"abs"`` (module docstring).
        layers: model layer of each ``layer`` row (only for a raw tensor).
        steps: indices of the steps to average (default: all).
    """
    check_choice("measure", measure, IMPORTANCE_MEASURES)
    if isinstance(source, (AttributionResult, MethodOutput)):
        options = getattr(source, "options", {}) or {}
        if options.get("gradient_source") == "post_o":
            raise InvalidInputError(
                "These maps use gradient_source='post_o': their 'head' axis is blocks of o_proj output "
                "channels, not attention heads. Recompute with gradient_source='pre_o' (the default)."
            )
        if source.layer_head is None:
            raise InvalidInputError("This result has no per-head decomposition (layer_head); use method='grad_ellm'.")
        layer_head, layers = source.layer_head, source.layers
    else:
        layer_head = torch.as_tensor(source)
        if layers is None:
            raise InvalidInputError("Pass layers= (the model layer of each row) with a raw layer_head tensor.")
    if layer_head.ndim != 4:
        raise InvalidInputError(f"layer_head must be [step, layer, head, pos], got shape {tuple(layer_head.shape)}.")
    if steps is not None:
        layer_head = layer_head[list(steps)]
    return HeadImportance(_reduce_positions(layer_head, measure).mean(dim=0), tuple(layers), measure)


def dataset_head_importance(items: Sequence[HeadImportance], *, normalise: bool = True) -> HeadImportance:
    """Mean importance over examples; with ``normalise`` each example is first divided by ``Σ|score|``."""
    if not items:
        raise InvalidInputError("No examples: pass at least one HeadImportance.")
    first = items[0]
    if any(i.layers != first.layers or i.measure != first.measure or i.unit != first.unit for i in items):
        raise InvalidInputError("All examples must cover the same layers with the same measure and unit.")
    stack = torch.stack([i.scores for i in items])
    if normalise:
        stack = stack / stack.abs().sum(dim=(1, 2), keepdim=True).clamp(min=torch.finfo(stack.dtype).tiny)
    return HeadImportance(stack.mean(dim=0), first.layers, first.measure, first.unit)


def grad_ellm_head_importance(
    model,
    tokens: TokenIds,
    target: Target | Sequence[Step],
    measure: ImportanceMeasure = "positive",
    **options: Any,
) -> HeadImportance:
    """Run Grad-ELLM (``layers="all"`` unless given) and reduce its head maps to importance.

    Args:
        model: a ``TransformerBridge``.
        tokens: ``[pos]`` token ids.
        target: a :class:`Target` at the last position, or a list of :class:`Step`.
        measure: see :func:`head_importance`.
        **options: Grad-ELLM options (``variant=``, ``spatial=``, ``layers=`` ...).
    """
    tokens = torch.as_tensor(tokens)
    method = GradEllm(model, **{"layers": "all", **options})
    if method.options.gradient_source == "post_o":
        raise InvalidInputError("Head importance needs gradient_source='pre_o': post_o maps are not per head.")
    return head_importance(method.attribute(tokens, as_steps(tokens, target)), measure)


def random_importance(n_layers: int, n_heads: int, seed: int) -> HeadImportance:
    """Seeded uniform random scores in ``[0, 1)``: the chance-level scorer (``measure="random"``)."""
    scores = torch.rand(n_layers, n_heads, generator=torch.Generator().manual_seed(seed))
    return HeadImportance(scores, tuple(range(n_layers)), "random")


@torch.no_grad()
def output_norm_importance(model, tokens: TokenIds, positions: Sequence[int] | None = None) -> HeadImportance:
    """``‖z_{p,h} W_O^h‖₂`` per (layer, head), averaged over ``positions`` (default: the last)."""
    info = model_info(model)
    tokens = torch.as_tensor(tokens)
    positions = [int(tokens.shape[-1]) - 1] if positions is None else list(positions)
    names = [hook_name("z", layer) for layer in range(info.n_layers)]
    _, acts = record_activations(model, tokens, names)
    rows = []
    for layer, name in enumerate(names):
        z = acts[name][0, positions].float()  # [n_pos, head, d_head]
        w_o = model.blocks[layer].attn.W_O.float().to(z.device)  # [head, d_head, d_model]
        rows.append(torch.einsum("phd,hdm->phm", z, w_o).norm(dim=-1).mean(dim=0))
    scores = torch.stack(rows)
    if not torch.isfinite(scores).all():
        raise NumericalError("The heads' outputs (hook_z) are NaN/inf: no valid output-norm importance exists.")
    return HeadImportance(scores, tuple(range(info.n_layers)), "output_norm")
