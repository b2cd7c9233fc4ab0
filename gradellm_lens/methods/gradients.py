r"""Gradient baselines at the token embeddings: saliency, input x gradient, integrated gradients.

Let :math:`e_i \in \mathbb{R}^{d}` be the output of ``hook_embed`` at position :math:`i` (the
token embedding the first block reads; Llama-family models add no positional embedding there, and
where a model adds learned positions, e.g. GPT-2's ``hook_pos_embed``, those are not attributed
and stay in place along the integration path) and :math:`y` the explained scalar of a step (the
target logit by default).

``saliency``
    :math:`s_i = \lVert \partial y / \partial e_i \rVert_2` (L2 norm over ``d_model``; unsigned).
``input_x_gradient``
    :math:`s_i = \sum_d e_i[d]\, \partial y / \partial e_i[d]` (signed; the base ``sign`` option
    keeps the positive part by default, or ``"abs"`` / ``"raw"``).
``integrated_gradients``
    Zero-embedding baseline: :math:`s_i = \sum_d e_i[d] \int_0^1 \partial y / \partial x_i[d]
    \big|_{x = \alpha e}\, d\alpha`, the integral approximated by a quadrature rule with
    ``n_steps`` nodes :math:`\alpha_k` and weights :math:`w_k` (``"gausslegendre"``, default, or
    ``"riemann_trapezoid" / "riemann_left" / "riemann_right" / "riemann_middle"``; the nodes and
    weights are captum 0.9's). Signed; completeness :math:`\sum_i s_i \approx y(e) - y(0)` holds
    for the raw scores up to the quadrature error. That error can be large: RMSNorm is
    scale-invariant except within :math:`\alpha \lesssim \sqrt{\varepsilon} / \operatorname{rms}(e)`,
    so the integrand is steep near the zero baseline (on a model with small embeddings 64 nodes
    were 30 % off and 1024 exact to 1e-5). So every call reports the **completeness gap** of each
    step, :math:`\delta = \sum_i s_i - (y(e) - y(0))` on the raw scores (captum's
    ``convergence_delta``), in ``MethodOutput.diagnostics["completeness_gap"]``, from one extra
    forward of the two path ends; a :class:`CompletenessWarning` says when
    :math:`|\delta| > \tau\,|y(e) - y(0)|` at some step (option ``completeness_tolerance``
    :math:`\tau`, default 0.1; ``float("inf")`` never warns).

Computation: every step of a sequence shares the same forward passes. Because the model is
causal, scaling the embeddings of the whole longest prefix by :math:`\alpha` gives, at position
:math:`p`, exactly the output of the scaled prefix ``tokens[: p + 1]``. The interpolated inputs
:math:`\alpha_k e` run as a batch of up to ``batch_size`` rows (``hook_embed`` output replaced via
``capture_gradients(fwd_hooks=...)``); the objective of step :math:`t` is
:math:`\sum_k w_k\, y_t(\alpha_k e)`, so one batched backward per batch returns
:math:`\sum_k w_k \partial y_t / \partial x_k` for all steps at once. Saliency and input x gradient
are the one-node case :math:`\alpha = w = 1`. The replaced embedding is a fresh leaf tensor, so
the gradients never reach the embedding matrix and frozen models work.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from ..capture import hook_name
from ..errors import InvalidInputError, check_choice
from ..targets import Step, as_index
from ..tensor_types import Embeddings, StepEmbeddingGrads, StepScores, TokenIds
from .base import AttributionMethod, MethodOutput
from .batching import chunks
from .objectives import capture_steps, shared_prefix, step_values

EMBED_HOOK = hook_name("embed")


class CompletenessWarning(UserWarning):
    """Integrated gradients' attributions do not add up to ``y(x) - y(baseline)`` within the tolerance."""

Integration = Literal["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"]
INTEGRATIONS: tuple[str, ...] = get_args(Integration)


def quadrature(n_steps: int, rule: Integration = "gausslegendre") -> tuple[Tensor, Tensor]:
    """Nodes ``alpha`` in [0, 1] and weights ``w`` (summing to 1) of an integration rule (float64)."""
    n = n_steps
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return torch.from_numpy(0.5 * (nodes + 1)), torch.from_numpy(0.5 * weights)
    weights = torch.full((n,), 1.0 / n, dtype=torch.float64)
    if rule == "riemann_trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
        return torch.linspace(0, 1, n, dtype=torch.float64), weights
    lo, hi = {
        "riemann_left": (0, 1 - 1 / n),
        "riemann_right": (1 / n, 1),
        "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
    }[rule]
    return torch.linspace(lo, hi, n, dtype=torch.float64), weights


def embedding_gradients(
    model,
    tokens: TokenIds,
    steps: Sequence[Step],
    *,
    alphas: Tensor | None = None,
    weights: Tensor | None = None,
    batch_size: int = 16,
) -> tuple[Embeddings, StepEmbeddingGrads]:
    """Embeddings ``e [pos, d]`` and ``G[t] = Σ_k w_k ∂y_t/∂x |_{x = α_k e}`` ``[step, pos, d]``.

    ``alphas`` / ``weights`` default to the single node 1 (the plain gradient). The nodes run in
    batches of ``batch_size`` rows; ``pos`` covers the longest prefix of ``steps``.
    """
    tokens = shared_prefix(tokens, steps)
    alphas = torch.ones(1, dtype=torch.float64) if alphas is None else alphas
    weights = torch.ones(1, dtype=torch.float64) if weights is None else weights
    original: dict[str, Tensor] = {}
    total: Tensor | None = None
    for part in chunks(len(alphas), batch_size, "integrated gradients batches"):

        def interpolate(embed: Tensor, hook=None, part=part) -> Tensor:
            original["e"] = embed[0].detach()
            scale = alphas[part].to(embed.device, embed.dtype)[:, None, None]
            return (scale * embed.detach()).requires_grad_(True)

        rows = tokens[None].expand(part.stop - part.start, -1)
        captured = capture_steps(
            model, rows, steps, grad_names=[EMBED_HOOK], row_weights=weights[part],
            fwd_hooks=[(EMBED_HOOK, interpolate)],
        )  # fmt: skip
        grads = captured.gradients[EMBED_HOOK].float().sum(dim=1)  # [step, pos, d]
        total = grads if total is None else total + grads
    return original["e"].float(), total


def path_end_values(model, tokens: TokenIds, steps: Sequence[Step]) -> Tensor:
    """``[2, step]``: each step's target value at the input (row 0) and at the zero-embedding baseline (row 1)."""
    tokens = shared_prefix(tokens, steps)

    def ends(embed: Tensor, hook=None) -> Tensor:
        return embed * torch.tensor([1.0, 0.0], device=embed.device, dtype=embed.dtype)[:, None, None]

    return step_values(model, tokens[None].expand(2, -1), steps, [(EMBED_HOOK, ends)])


class EmbeddingGradientMethod(AttributionMethod):
    """Shared machinery: gradients at ``hook_embed`` for all steps, reduced per token by :meth:`_reduce`."""

    def _path(self) -> tuple[Tensor | None, Tensor | None, int]:
        """Quadrature nodes, weights and batch size (default: the plain gradient at the input)."""
        return None, None, 1

    def _attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        alphas, weights, batch_size = self._path()
        embeddings, grads = embedding_gradients(
            self.model, tokens, steps, alphas=alphas, weights=weights, batch_size=batch_size
        )
        return MethodOutput(scores=self._reduce(embeddings, grads))

    def _reduce(self, embeddings: Embeddings, grads: StepEmbeddingGrads) -> StepScores:
        """Default: gradient x input summed over ``d_model``."""
        return torch.einsum("pd,tpd->tp", embeddings, grads)


class Saliency(EmbeddingGradientMethod):
    """Saliency: L2 norm over d_model of the gradient at the token embedding."""

    method_name: ClassVar[str] = "saliency"

    def _reduce(self, embeddings: Embeddings, grads: StepEmbeddingGrads) -> StepScores:
        return grads.norm(dim=-1)


class InputXGradient(EmbeddingGradientMethod):
    """Input x gradient: Σ_d e_i[d] ∂y/∂e_i[d] at the token embedding."""

    method_name: ClassVar[str] = "input_x_gradient"
    signed: ClassVar[bool] = True


@dataclass(frozen=True)
class IntegratedGradientsOptions:
    """Options of :class:`IntegratedGradients`.

    Attributes:
        n_steps: number of quadrature nodes on the path from the zero embedding (default 50).
        integration: quadrature rule (captum's names; default ``"gausslegendre"``).
        batch_size: interpolated inputs per forward/backward pass (default 16).
        completeness_tolerance: warn when a step's completeness gap exceeds this fraction of
            ``|y(x) - y(baseline)|`` (default 0.1; ``float("inf")``: never).
    """

    n_steps: int = 50
    integration: Integration = "gausslegendre"
    batch_size: int = 16
    completeness_tolerance: float = 0.1

    def __post_init__(self) -> None:
        check_choice("integration", self.integration, INTEGRATIONS)
        minimum = 1 if self.integration == "gausslegendre" else 2
        object.__setattr__(self, "n_steps", as_index(self.n_steps, f"n_steps ({self.integration})", minimum=minimum))
        object.__setattr__(self, "batch_size", as_index(self.batch_size, "batch_size", minimum=1))
        tol = self.completeness_tolerance
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or math.isnan(tol) or tol < 0:
            raise InvalidInputError(f"completeness_tolerance must be a number >= 0 (inf: never warn), got {tol!r}.")


class IntegratedGradients(InputXGradient):
    """Integrated gradients from the zero embedding; the interpolated inputs run as batches."""

    method_name: ClassVar[str] = "integrated_gradients"
    Options: ClassVar[type] = IntegratedGradientsOptions
    throughput_options: ClassVar[frozenset[str]] = frozenset({"batch_size"})

    def _path(self) -> tuple[Tensor | None, Tensor | None, int]:
        alphas, weights = quadrature(self.options.n_steps, self.options.integration)
        return alphas, weights, self.options.batch_size

    def _attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        out = super()._attribute(tokens, steps)
        ends = path_end_values(self.model, tokens, steps).cpu()
        change = ends[0] - ends[1]  # y(x) - y(baseline), per step
        gap = out.scores.float().cpu().sum(dim=-1) - change  # raw scores are 0 after each step's position
        bad = (gap.abs() > self.options.completeness_tolerance * change.abs()).nonzero().flatten().tolist()
        if bad:
            worst = max(float(gap[t].abs() / change[t].abs().clamp(min=1e-12)) for t in bad)
            warnings.warn(
                f"integrated_gradients: the attributions miss y(x) - y(baseline) by more than "
                f"{self.options.completeness_tolerance:.0%} at {len(bad)} of {len(steps)} step(s) (worst {worst:.0%}); "
                "raise n_steps (see diagnostics['completeness_gap']).",
                CompletenessWarning,
                stacklevel=3,
            )
        return MethodOutput(scores=out.scores, diagnostics={"completeness_gap": gap.tolist()})
