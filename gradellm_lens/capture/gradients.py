"""One forward, one (possibly batched) backward: activations and gradients at named hook points.

This and :mod:`.single_position` are the places where gradellm-lens runs a model with gradients.
Forward hooks (:class:`~.hooks.ActivationStore`) keep a reference to the live tensor at each
requested hook point *and return it*, which keeps the hook's reshaped view inside the autograd
graph (TransformerLens' converted hooks such as ``hook_z`` drop a view that the hook does not
return). Gradients of the objective are then taken with ``torch.autograd.grad`` with respect to
those tensors, so

* parameter ``.grad`` buffers are never written,
* all hooks are removed when the call returns or raises (``model.hooks`` context),
* several objectives (one per generation step) share one forward pass: with ``objective`` returning
  a vector of ``n`` scalars the gradients come back with a leading dimension ``n``, computed by one
  vectorised backward (``is_grads_batched``) or, where vmap cannot trace an op, by ``n`` backwards
  over the retained graph (``Captured.backward`` records which path ran),
* with ``logit_positions`` the unembedding runs only at the positions the objective reads
  (:func:`~.hooks.logit_rows_hook`), so neither the forward nor the backward pays for
  ``[pos, vocab]`` logits that no objective uses,
* frozen models (``requires_grad_(False)``) work: the token embeddings enter the graph as a fresh
  leaf tensor when they do not require gradients, so no parameter flag is read or changed,
* running out of memory raises with advice (:func:`out_of_memory_advice`); only a failure of the
  vectorised backward itself falls back to the loop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ..errors import InvalidInputError, NumericalError
from .hooks import ActivationStore, FwdHook, check_hook_names, hook_name, logit_rows_hook

Objective = Callable[[Tensor], Tensor]
BackwardPath = Literal["single", "vmap", "loop", "none"]
logger = logging.getLogger(__name__)
MEMORY_ADVICE = (
    "Out of memory while computing gradients. Explain fewer steps per call (or pass share_forward=False: "
    "one step per pass), use a shorter prompt, a smaller batch_size (integrated gradients), or a "
    "lower-precision dtype."
)


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


def _grad(values: Tensor, inputs: Sequence[Tensor], allow_unused: bool, vectorize: bool) -> tuple[tuple, BackwardPath]:
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
            if not is_batching_failure(exc):
                raise
            logger.info("vectorised backward failed (%s); falling back to %d backwards", str(exc).splitlines()[0], n)
    per_step = [torch.autograd.grad(values[i], inputs, allow_unused=allow_unused, retain_graph=True) for i in range(n)]
    grads = tuple(None if per_step[0][j] is None else torch.stack([g[j] for g in per_step]) for j in range(len(inputs)))
    return grads, "loop"


def is_batching_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is vmap failing to batch an op (the only error the loop fallback is for).

    Out-of-memory is never one: it must surface, not be retried as ``n`` backwards.
    """
    if is_out_of_memory(exc):
        return False
    message = str(exc).lower()
    return any(marker in message for marker in ("vmap", "batching rule", "batched", "is_grads_batched"))


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError`` or the CPU allocator's failure."""
    message = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in message or "out of memory" in message


@contextlib.contextmanager
def out_of_memory_advice() -> Iterator[None]:
    """Re-raise an out-of-memory error as ``torch.OutOfMemoryError`` with :data:`MEMORY_ADVICE`."""
    try:
        yield
    except RuntimeError as exc:
        if not is_out_of_memory(exc):
            raise
        raise torch.OutOfMemoryError(
            f"{MEMORY_ADVICE} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from exc


def graph_input_hook() -> FwdHook:
    """A hook on the token embeddings that makes them a leaf of the autograd graph when they are not
    part of it (a frozen model): every later activation then carries gradients, whatever the
    parameters' ``requires_grad``."""

    def enter(embed: Tensor, hook=None) -> Tensor:
        return embed if embed.requires_grad else embed.detach().requires_grad_(True)

    return hook_name("embed"), enter


def check_finite_gradients(names: Sequence[str], grads: Sequence[Tensor | None], batched: int) -> None:
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
    store = ActivationStore([*grad_names, *act_names])
    names = store.names
    check_hook_names(model, [*names, *(name for name, _ in fwd_hooks if isinstance(name, str))])
    row_hooks, select_rows = logit_rows_hook(model, logit_positions)
    entry = [graph_input_hook()] if hook_name("embed") in getattr(model, "hook_dict", {}) else []
    hooks = [*entry, *fwd_hooks, *store.hooks(), *row_hooks]
    with out_of_memory_advice(), torch.enable_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(tokens, attention_mask=attention_mask) if attention_mask is not None else model(tokens)
        logits = select_rows(logits)
        values = objective(logits)
        if not torch.isfinite(values).all():
            raise NumericalError(f"The attribution objective is not finite ({values.detach().cpu().tolist()}).")
        store.check_fired()
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
    check_finite_gradients(grad_names, grads, values.ndim)
    return Captured(
        logits=logits.detach(),
        objective=values.detach(),
        activations={n: store[n].detach() for n in names},
        gradients={n: (None if g is None else g.detach()) for n, g in zip(grad_names, grads)},
        backward=path,
    )
