r"""The explained scalars of many generation steps, read from one (batched) forward pass.

For a causal model the logits at position :math:`p` depend only on ``tokens[: p + 1]``, so one
forward over the longest prefix serves every step: step :math:`t` reads
:math:`y_t = \text{target}_t(\text{logits}[b, p_t])` in every batch row :math:`b`. Perturbation
methods batch perturbed copies of the sequence and read the same values from each row; gradient
methods differentiate the row-weighted sum :math:`\sum_b w_b\, y_t^{(b)}` (one objective per step,
one batched backward), with :math:`w = 1` for a single unperturbed row.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from ..capture import Captured, FwdHook, capture_gradients, logit_rows_hook
from ..capture.frozen_prefix import FrozenKeysValues, tail_logits
from ..targets import Step, stacked_values
from ..tensor_types import BatchTokenIds, TokenIds


@torch.no_grad()
def step_values(
    model,
    tokens: BatchTokenIds,
    steps: Sequence[Step],
    fwd_hooks: Sequence[FwdHook] = (),
    *,
    frozen: FrozenKeysValues | None = None,
) -> Float[Tensor, "batch step"]:
    """``values[b, t] = steps[t].target(logits of row b at steps[t].position)`` from one no-grad forward
    (``fwd_hooks`` applied), the unembedding run only at the step positions; float32.

    With ``frozen`` (the keys/values of the first ``h`` positions), ``tokens`` are the positions from
    ``h`` on and run over them (:func:`~gradellm_lens.capture.frozen_prefix.tail_logits`); step
    positions still count from 0 and must be ``>= h``.
    """
    if frozen is None:
        rows, select = logit_rows_hook(model, [s.position for s in steps])
        with model.hooks(fwd_hooks=[*fwd_hooks, *rows]):
            logits = select(model(tokens))
    else:
        logits = tail_logits(model, tokens, frozen, [s.position - frozen.length for s in steps], fwd_hooks=fwd_hooks)
    return stacked_values([s.target for s in steps], logits).float()


def capture_steps(
    model,
    tokens: BatchTokenIds,
    steps: Sequence[Step],
    *,
    grad_names: Sequence[str],
    row_weights: Tensor | None = None,
    fwd_hooks: Sequence[FwdHook] = (),
) -> Captured:
    """:func:`~gradellm_lens.capture.capture_gradients` of every step's target at once.

    The objective of step ``t`` is ``Σ_b row_weights[b] · y_t(row b)`` (weights default to 1), so the
    gradients come back as ``[step, batch, ...]``; logits are computed only at the step positions.
    """
    weights = torch.ones(tokens.shape[0]) if row_weights is None else row_weights

    def objective(logits: Tensor) -> Tensor:  # logits [batch, step, vocab]
        values = stacked_values([s.target for s in steps], logits).float()
        return (weights.to(values.device, values.dtype)[:, None] * values).sum(dim=0)

    return capture_gradients(
        model,
        tokens,
        grad_names=grad_names,
        objective=objective,
        fwd_hooks=fwd_hooks,
        logit_positions=[s.position for s in steps],
    )


def shared_prefix(tokens: TokenIds, steps: Sequence[Step]) -> TokenIds:
    """The shortest prefix of ``tokens`` that contains every step's position."""
    return tokens[: max(s.position for s in steps) + 1]


def step_rows(x: Float[Tensor, "... pos pos"], steps: Sequence[Step]) -> Float[Tensor, "step ... pos"]:
    """Row ``steps[t].position`` of a ``[..., query, key]`` matrix for each step (step dim first)."""
    positions = torch.tensor([s.position for s in steps], device=x.device)
    return x[..., positions, :].movedim(-2, 0)
