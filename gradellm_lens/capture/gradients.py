"""One forward, one (possibly batched) backward: activations and gradients at named hook points.

This is the single place where gradellm-lens runs a model with gradients. Forward hooks keep a
reference to the live tensor at each requested hook point *and return it*, which keeps the hook's
reshaped view inside the autograd graph (TransformerLens' converted hooks such as ``hook_z`` drop a
view that the hook does not return). Gradients of the objective are then taken with
``torch.autograd.grad`` with respect to those tensors, so

* parameter ``.grad`` buffers are never written,
* all hooks are removed when the call returns or raises (``model.hooks`` context),
* several objectives (one per generation step) share one forward pass: with ``objective`` returning
  a vector of ``n`` scalars the gradients come back with a leading dimension ``n``, computed by one
  vectorised backward (``is_grads_batched``) or, where vmap cannot trace an op, by ``n`` backwards
  over the retained graph (``Captured.backward`` records which path ran),
* with ``logit_positions`` the unembedding runs only at the positions the objective reads (a hook on
  ``unembed.hook_in`` slices the final residual stream), so neither the forward nor the backward
  pays for ``[pos, vocab]`` logits that no objective uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ..errors import InvalidInputError, NumericalError, did_you_mean

Objective = Callable[[Tensor], Tensor]
FwdHook = tuple[str, Callable]
BackwardPath = Literal["single", "vmap", "loop", "none"]
logger = logging.getLogger(__name__)
UNEMBED_INPUT = "unembed.hook_in"


@dataclass
class Captured:
    """What one capture run produced. Tensors are detached.

    Attributes:
        logits: ``[batch, pos, vocab]`` logits of the forward pass.
        objective: the objective value(s), shape ``[]`` or ``[n]``.
        activations: hook name -> activation as the hook saw it.
        gradients: hook name -> d objective / d activation (leading ``[n]`` when batched), or
            None where the activation was not part of the graph (only with ``allow_unused``).
        backward: how the gradients were computed: ``"single"`` (one backward of a scalar),
            ``"vmap"`` (one vectorised backward for ``n`` objectives), ``"loop"`` (``n``
            backwards over the retained graph: vmap disabled or unable to trace an op) or
            ``"none"`` (nothing to differentiate).
    """

    logits: Tensor
    objective: Tensor
    activations: dict[str, Tensor] = field(default_factory=dict)
    gradients: dict[str, Tensor | None] = field(default_factory=dict)
    backward: BackwardPath = "single"


def hook_count(model: torch.nn.Module) -> int:
    """Total number of forward/backward (pre-)hooks registered on ``model``'s submodules."""
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def _grad(
    values: Tensor, inputs: Sequence[Tensor], allow_unused: bool, vectorize: bool
) -> tuple[tuple, BackwardPath]:
    """Gradients of ``values`` (scalar or ``[n]``) w.r.t. ``inputs``, and the path that computed them."""
    if values.ndim == 0:
        return torch.autograd.grad(values, inputs, allow_unused=allow_unused), "single"
    n = values.shape[0]
    if n == 1:  # one objective: a plain backward, without vmap's set-up
        grads = torch.autograd.grad(values[0], inputs, allow_unused=allow_unused)
        return tuple(None if g is None else g[None] for g in grads), "single"
    if vectorize:
        try:
            eye = torch.eye(n, dtype=values.dtype, device=values.device)
            grads = torch.autograd.grad(
                values, inputs, grad_outputs=eye, is_grads_batched=True, allow_unused=allow_unused, retain_graph=True
            )
            return grads, "vmap"
        except RuntimeError as exc:  # an op without a batching rule: fall back to n backwards, same graph
            logger.info("vectorised backward failed (%s); falling back to %d backwards", str(exc).splitlines()[0], n)
    per_step = [
        torch.autograd.grad(values[i], inputs, allow_unused=allow_unused, retain_graph=True) for i in range(n)
    ]
    grads = tuple(
        None if per_step[0][j] is None else torch.stack([g[j] for g in per_step]) for j in range(len(inputs))
    )
    return grads, "loop"


def _logit_rows_hook(model, positions: Sequence[int] | None) -> tuple[list[FwdHook], Callable[[Tensor], Tensor]]:
    """Forward hooks that restrict the unembedding to ``positions``, and the logits post-processing.

    Where the model has no ``unembed.hook_in`` the logits are computed in full and sliced after.
    """
    if positions is None:
        return [], lambda logits: logits
    index = torch.as_tensor(list(positions), dtype=torch.long)
    if index.ndim != 1 or index.numel() == 0:
        raise InvalidInputError("logit_positions must be a non-empty list of positions.")
    if UNEMBED_INPUT in getattr(model, "hook_dict", {}):

        def rows(resid: Tensor, hook=None) -> Tensor:
            return resid[:, index.to(resid.device)]

        return [(UNEMBED_INPUT, rows)], lambda logits: logits
    return [], lambda logits: logits[:, index.to(logits.device)]


def _check_hook_names(model, names: Sequence[str]) -> None:
    """Raise :class:`InvalidInputError` (with a suggestion) for a hook name the model does not have."""
    known = getattr(model, "hook_dict", None)
    if known is None:
        return
    for name in names:
        if name not in known:
            n_layers = model.cfg.n_layers
            raise InvalidInputError(
                f"Unknown hook point {name!r} on this model.{did_you_mean(name, known, cutoff=0.8)} "
                f"It has {n_layers} layers (blocks.0 .. blocks.{n_layers - 1})."
            )


def _check_finite_gradients(names: Sequence[str], grads: Sequence[Tensor | None], batched: int) -> None:
    """Raise :class:`NumericalError` naming the first hook point (and objective row) with NaN/inf gradients."""
    for name, grad in zip(names, grads):
        if grad is None or bool(torch.isfinite(grad).all()):
            continue
        where = ""
        if batched:
            rows = (~torch.isfinite(grad)).flatten(1).any(dim=1).nonzero().flatten().tolist()
            where = f" for objective row(s) {rows}"
        raise NumericalError(
            f"The gradient at hook point {name!r}{where} contains NaN/inf, although the objective is finite: "
            "no valid attribution exists (half-precision overflow or a hook that breaks the backward pass?)."
        )


def capture_gradients(
    model,
    tokens: Tensor,
    *,
    grad_names: Sequence[str],
    objective: Objective,
    act_names: Sequence[str] = (),
    fwd_hooks: Sequence[FwdHook] = (),
    attention_mask: Tensor | None = None,
    allow_unused: bool = False,
    vectorize: bool = True,
    logit_positions: Sequence[int] | None = None,
) -> Captured:
    """Run ``model(tokens)`` once and differentiate ``objective(logits)`` w.r.t. hook activations.

    Args:
        model: a ``TransformerBridge`` (anything with ``hooks()`` and TL hook names).
        tokens: ``[batch, pos]`` token ids.
        grad_names: hook names whose activations are returned *and* differentiated.
        objective: maps logits ``[batch, pos, vocab]`` to a scalar or a vector of ``n`` scalars.
        act_names: further hook names whose activations are only recorded.
        fwd_hooks: extra ``(name, fn)`` forward hooks applied in the same pass, before capture
            (ablations, embedding replacement for integrated gradients).
        attention_mask: optional ``[batch, pos]`` mask for left-padded batches.
        allow_unused: return None instead of raising for activations outside the graph.
        vectorize: batch the ``n`` backward passes with ``is_grads_batched``.
        logit_positions: compute logits only at these positions; ``objective`` (and
            ``Captured.logits``) then see ``[batch, len(logit_positions), vocab]``, row ``j`` being
            position ``logit_positions[j]``. Values and gradients are those of the full forward.

    Raises:
        InvalidInputError: under ``torch.inference_mode()`` (no autograd graph can exist there).
        NumericalError: the objective, or a requested gradient, contains NaN or inf (e.g. an
            overflow in a half-precision model, or a hook that poisons the backward pass).
    """
    if torch.is_inference_mode_enabled():
        raise InvalidInputError(
            "Gradient attribution cannot run inside torch.inference_mode(); call it outside that "
            "context (torch.no_grad() is fine: gradients are enabled internally)."
        )
    store: dict[str, Tensor] = {}

    def keep(name: str) -> Callable:
        def hook(tensor: Tensor, hook=None) -> Tensor:
            store[name] = tensor
            return tensor

        return hook

    names = list(dict.fromkeys([*grad_names, *act_names]))
    _check_hook_names(model, [*names, *(name for name, _ in fwd_hooks if isinstance(name, str))])
    row_hooks, select_rows = _logit_rows_hook(model, logit_positions)
    hooks = [*fwd_hooks, *[(name, keep(name)) for name in names], *row_hooks]
    with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(tokens, attention_mask=attention_mask) if attention_mask is not None else model(tokens)
        logits = select_rows(logits)
        values = objective(logits)
        if not torch.isfinite(values).all():
            raise NumericalError(f"The attribution objective is not finite ({values.detach().cpu().tolist()}).")
        missing = [n for n in names if n not in store]
        if missing:
            raise InvalidInputError(f"Hook point(s) never fired during the forward pass: {missing}.")
        live = [store[n] for n in grad_names]
        differentiable = [t.requires_grad for t in live]
        if not all(differentiable) and not allow_unused:
            bad = [n for n, ok in zip(grad_names, differentiable) if not ok]
            raise InvalidInputError(f"Activations at {bad} are not part of the autograd graph.")
        inputs = [t for t, ok in zip(live, differentiable) if ok]
        computed, path = _grad(values, inputs, allow_unused, vectorize) if inputs else ((), "none")
        grads_iter = iter(computed)
        grads = [next(grads_iter) if ok else None for ok in differentiable]
        logger.debug("backward path %s for objective of shape %s", path, tuple(values.shape))
    _check_finite_gradients(grad_names, grads, values.ndim)
    return Captured(
        logits=logits.detach(),
        objective=values.detach(),
        activations={n: store[n].detach() for n in names},
        gradients={n: (None if g is None else g.detach()) for n, g in zip(grad_names, grads)},
        backward=path,
    )
