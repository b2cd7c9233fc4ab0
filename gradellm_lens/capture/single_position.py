r"""Exact per-step gradients at each step's own position: frozen prefix keys/values + live rows.

Many methods need, for every explained step :math:`t` (the logit :math:`y_t` read at position
:math:`p_t`), the gradient with respect to an activation *at the step's own position*:
Grad-ELLM's :math:`\partial y_t / \partial z_\ell[p_t]` (Huang & Chan, arXiv 2601.03089, after
Grad-ECLIP's channel weights) and attention x gradient's :math:`\partial y_t / \partial
A_\ell[p_t, :]`. In a causal transformer :math:`z_\ell[p_t]` reaches :math:`y_t` only through
position :math:`p_t`'s own column of the later layers; every earlier position :math:`i < p_t`
enters that column only through its keys and values, which do not depend on :math:`z_\ell[p_t]`.
So the gradient is exactly that of a *single-position* pass: position :math:`p_t` alone, with the
earlier positions' keys and values held as constants.

:func:`step_gradients` computes it for all steps and all layers at once:

1. one no-grad forward over ``tokens[: P + 1]`` (:math:`P = \max_t p_t`) records the requested
   activations (spatial weights and the like) and, at every layer from the lowest differentiated
   one up, the keys after RoPE (``hook_rot_k``) and the values (``hook_v``);
2. one pass with gradients over :math:`T` live queries, laid out as one sequence of :math:`T`
   positions: query :math:`t` is token :math:`p_t` at position id :math:`p_t`, and a 4-D mask lets it
   see the frozen keys/values of positions :math:`< p_t` and its own live key/value only, never
   another query's (the bridge's attention appends the frozen ones through a ``layer_past`` cache
   object). The queries are independent, exactly as :math:`T` separate one-token rows would be, but
   the frozen keys/values are held once rather than once per row, so the attention and its
   backward are :math:`T`-row matrix products instead of :math:`T` outer products, and no gradient
   is formed for :math:`T` copies of the frozen keys/values. Blocks below the lowest differentiated
   layer are not run: that layer's input residual at :math:`p_t` is a constant taken from step 1;
3. one backward of :math:`\sum_t y_t`: the queries are independent, so query :math:`t` of every
   gradient is step :math:`t`'s exact gradient.

Where this cannot apply, the full-graph path runs instead (one forward over the sequence with
gradients and one batched backward, :func:`~.gradients.capture_gradients`) and
:attr:`StepGradients.path` says so: a model without the capability
(:attr:`~gradellm_lens.models.ModelInfo.single_position`: the bridge's re-implemented rotary
attention, no sliding window), forward hooks installed on the model's hook points (ablations
see whole sequences), a model in training mode, or a model whose one-time numerical self-check
(fast vs full graph on a short sequence, cached per model object) failed.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..errors import InvalidInputError, NumericalError, check_choice
from ..models.capabilities import model_info
from ..targets import Step, Target, stacked_values
from ..tensor_types import TokenIds
from .frozen_prefix import (
    cached_attention_mask,
    checked_once,
    prefix_cache_supported,
    record_keys_values,
    relative_error,
    skipped_blocks,
)
from .gradients import capture_gradients, check_finite_gradients, graph_input_hook, out_of_memory_advice
from .hooks import QUERY_KEY_KINDS, ActivationStore, check_hook_names, hook_kind, hook_name

GradientPath = Literal["single_position", "full_graph"]
PathRequest = Literal["auto", "single_position", "full_graph"]
GRADIENT_PATHS: tuple[str, ...] = ("auto", "single_position", "full_graph")
_SELF_CHECK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class StepGradients:
    """Gradients of every step's objective at the step's own position (all tensors detached).

    Attributes:
        activations: act name -> activation over ``tokens[: P + 1]`` as its hook saw it (``[1, ...]``).
        at_steps: grad name -> the activation at each step's own position, ``[step, ...]``; for
            ``hook_pattern`` / ``hook_attn_scores`` the step's query row over key positions
            ``[step, head, P + 1]``, zero after the step's position.
        gradients: grad name -> ``∂y_t / ∂(activation at p_t)``, laid out like ``at_steps``.
        objective: ``[step]`` the values ``y_t``.
        path: ``"single_position"`` or ``"full_graph"``: which computation ran.
    """

    activations: dict[str, Tensor]
    at_steps: dict[str, Tensor]
    gradients: dict[str, Tensor]
    objective: Tensor
    path: GradientPath


def _layer_of(name: str) -> int:
    return int(name.split(".")[1])


def _own_position_rows(x: Tensor, positions: Tensor, kind: str | None, batched: bool) -> Tensor:
    """Full-graph tensors at each step's own position.

    ``x`` is an activation ``[pos, ...]`` (query-key kinds: ``[head, query, key]``) or, with
    ``batched``, a gradient ``[step, pos, ...]`` (``[step, head, query, key]``).
    """
    steps = torch.arange(len(positions), device=x.device)
    if kind in QUERY_KEY_KINDS:
        rows = x[steps, :, positions, :] if batched else x[:, positions, :].movedim(1, 0)  # [step, head, key]
        after = torch.arange(rows.shape[-1], device=x.device)[None, :] > positions[:, None]
        return rows.masked_fill(after[:, None, :], 0.0)
    return x[steps, positions] if batched else x[positions]


def _key_positions(x: Tensor, positions: Tensor, n: int) -> Tensor:
    """Live query rows ``[head, step, n + step]`` (frozen keys 0..n-1, then every query's live key) ->
    ``[step, head, n]`` indexed by key position: keys ``< p_t`` as they are, the step's own live key
    at ``p_t``, zero after."""
    steps = torch.arange(len(positions), device=x.device)
    rows = x.transpose(0, 1)  # [step, head, n + step]
    out = rows[..., :n].clone()
    before = torch.arange(n, device=x.device)[None, :] < positions[:, None]
    out = out.masked_fill(~before[:, None, :], 0.0)
    out[steps, :, positions] = rows[steps, :, n + steps]
    return out


def live_query_mask(positions: Tensor, n: int) -> Tensor:
    """``[step, n + step]`` visibility of the live queries over the frozen keys ``0..n-1`` and the
    live keys: query ``t`` sees the frozen keys before ``p_t`` and its own live key only."""
    steps = len(positions)
    frozen = torch.arange(n, device=positions.device)[None, :] < positions[:, None]
    return torch.cat([frozen, torch.eye(steps, dtype=torch.bool, device=positions.device)], dim=1)


def _full_graph(model, tokens, steps, grad_names, act_names) -> StepGradients:
    positions = [s.position for s in steps]
    captured = capture_gradients(
        model,
        tokens[None, : max(positions) + 1],
        grad_names=grad_names,
        act_names=act_names,
        objective=lambda logits: stacked_values([s.target for s in steps], logits[0]),
        logit_positions=positions,  # row t of the logits is step t's position
    )
    index = torch.tensor(positions, device=tokens.device)
    at_steps, gradients = {}, {}
    for name in grad_names:
        kind = hook_kind(name)
        at_steps[name] = _own_position_rows(captured.activations[name][0], index, kind, batched=False)
        gradients[name] = _own_position_rows(captured.gradients[name][:, 0], index, kind, batched=True)
    activations = {name: captured.activations[name] for name in act_names}
    return StepGradients(activations, at_steps, gradients, captured.objective, "full_graph")


def _single_position(model, tokens, steps, grad_names, act_names) -> StepGradients:
    positions = [s.position for s in steps]
    n = max(positions) + 1
    index = torch.tensor(positions, device=tokens.device)
    start = min(_layer_of(name) for name in grad_names)
    layers = range(start, model.cfg.n_layers)
    resid = hook_name("resid_pre", start) if start > 0 else None
    rows = {resid: lambda x: x[:, index]} if resid else {}  # the lowest layer's input at the step positions
    store = ActivationStore([*act_names, *rows], select=rows)
    frozen, _ = record_keys_values(model, tokens[None, :n], layers, store)

    # the T live queries as one sequence (see the module docstring): [1, 1, step, n + step]
    mask = cached_attention_mask(live_query_mask(index, n)[None], frozen.dtype)
    live = ActivationStore(grad_names)
    if resid:  # the constant input residual of the lowest differentiated layer, as a leaf of the graph
        leaf = store[resid].detach().requires_grad_(True)  # [1, step, d_model]
        entry = [(resid, lambda x, hook=None: leaf)]
    else:
        entry = [graph_input_hook()]
    with torch.enable_grad(), model.hooks(fwd_hooks=[*entry, *live.hooks()]), skipped_blocks(model.blocks[:start]):
        logits = model(tokens[index][None], attention_mask=mask, position_ids=index[None], layer_past=frozen)
        values = stacked_values([s.target for s in steps], logits[0])
        if not torch.isfinite(values).all():
            raise NumericalError(f"The attribution objective is not finite ({values.detach().cpu().tolist()}).")
        live.check_fired()
        grads = torch.autograd.grad(values.sum(), [live[name] for name in grad_names])
    check_finite_gradients(grad_names, grads, 1)
    at_steps, gradients = {}, {}
    for name, grad in zip(grad_names, grads):
        act, grad = live[name].detach(), grad.detach()
        if hook_kind(name) in QUERY_KEY_KINDS:  # [1, head, step, n + step]
            at_steps[name], gradients[name] = (_key_positions(x[0], index, n) for x in (act, grad))
        else:  # [1, step, ...]
            at_steps[name], gradients[name] = act[0], grad[0]
    activations = {name: store[name] for name in act_names}
    return StepGradients(activations, at_steps, gradients, values.detach(), "single_position")


def single_position_supported(model, grad_names: Sequence[str]) -> bool:
    """Whether :func:`step_gradients` can take the single-position path for these hook points now."""
    if not grad_names or any(hook_kind(n) is None or hook_kind(n) in ("embed", "unembed_in") for n in grad_names):
        return False
    return prefix_cache_supported(model) and checked_once(_SELF_CHECK, model, "single-position", _gradients_agree)


def _gradients_agree(model, tokens: Tensor, tol: float) -> bool:
    """Fast vs full-graph gradients: the frozen keys/values, the 4-D mask, the position ids and the
    skipped lower blocks (second case) give the full computation's gradients."""
    steps = [Step(p, Target(int(tokens[p + 1]))) for p in (2, 5, 7)]
    last = model_info(model).n_layers - 1
    for names in ([hook_name("z", 0), hook_name("z", last), hook_name("pattern", last)], [hook_name("attn_out", last)]):
        fast = _single_position(model, tokens, steps, names, [])
        full = _full_graph(model, tokens, steps, names, [])
        if any(relative_error(fast.gradients[n], full.gradients[n]) > tol for n in names):
            return False
    return True


def step_gradients(
    model,
    tokens: TokenIds,
    steps: Sequence[Step],
    *,
    grad_names: Sequence[str],
    act_names: Sequence[str] = (),
    path: PathRequest = "auto",
) -> StepGradients:
    """Gradients of every step's target at the step's own position, with the activations at ``act_names``.

    Args:
        model: a ``TransformerBridge``.
        tokens: ``[pos]`` token ids (checked by the caller); the forward covers the longest prefix.
        steps: the explained steps (``steps[t].target`` read at ``steps[t].position``).
        grad_names: per-layer hook points (:func:`~.hooks.hook_name`: ``z``, ``attn_out``,
            ``pattern``, ...) whose own-position activation is differentiated.
        act_names: hook points only recorded, over the whole prefix.
        path: ``"auto"`` (single-position where supported, else the full graph), or force one.

    Raises:
        InvalidInputError: ``path="single_position"`` where it is not supported, unknown hook names.
        NumericalError: NaN/inf objective or gradients.
    """
    check_choice("gradient_path", path, GRADIENT_PATHS)
    if torch.is_inference_mode_enabled():
        raise InvalidInputError(
            "Gradient attribution cannot run inside torch.inference_mode(); call it outside that "
            "context (torch.no_grad() is fine: gradients are enabled internally)."
        )
    grad_names, act_names = list(dict.fromkeys(grad_names)), list(dict.fromkeys(act_names))
    check_hook_names(model, [*grad_names, *act_names])
    fast = path != "full_graph" and single_position_supported(model, grad_names)
    if path == "single_position" and not fast:
        raise InvalidInputError(
            "gradient_path='single_position' is not available here (it needs the bridge's rotary attention "
            "without a sliding window, no hooks installed on the model, eval mode, and per-layer hook points); "
            "use gradient_path='auto'."
        )
    with out_of_memory_advice():
        if fast:
            return _single_position(model, tokens, steps, grad_names, act_names)
        return _full_graph(model, tokens, steps, grad_names, act_names)
