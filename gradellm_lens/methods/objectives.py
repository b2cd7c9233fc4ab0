"""The explained scalars of many generation steps, read from one (batched) forward pass.

For a causal model the logits at position :math:`p` depend only on ``tokens[: p + 1]``, so one
forward over the longest prefix serves every step: step :math:`t` reads
:math:`y_t = \\text{target}_t(\\text{logits}[b, p_t])` for every batch row :math:`b`.
Perturbation methods (integrated gradients, occlusion) batch perturbed copies of the sequence and
read the same values from each row.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from ..targets import Step
from ..typing import TokenIds


def step_values(logits: Float[Tensor, "batch pos vocab"], steps: Sequence[Step]) -> Float[Tensor, "batch step"]:
    """``values[b, t] = steps[t].target(logits[b, steps[t].position])``, differentiably."""
    return torch.stack([s.target(logits[:, s.position]) for s in steps], dim=-1)


def shared_prefix(tokens: TokenIds, steps: Sequence[Step]) -> TokenIds:
    """The shortest prefix of ``tokens`` that contains every step's position."""
    return tokens[: max(s.position for s in steps) + 1]


def step_rows(x: Float[Tensor, "... pos pos"], steps: Sequence[Step]) -> Float[Tensor, "step ... pos"]:
    """Row ``steps[t].position`` of a ``[..., query, key]`` matrix for each step (step dim first)."""
    positions = torch.tensor([s.position for s in steps], device=x.device)
    return x[..., positions, :].movedim(-2, 0)
