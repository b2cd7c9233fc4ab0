"""Faithfulness of one attribution at one step (``evaluate_step``): Soft-NS/NC and π-Soft-NS/NC curves.

For a prefix ``x = tokens[: position + 1]``, the explained token ``ŷ`` and scores over ``x``:

1. normalise the scores over the perturbable positions (:mod:`.normalise`): min-max for plain Soft,
   ``config.normalise`` (default ``"max"``) for π-Soft; a *flat* map (all zero, or all equal over
   more than one position: :func:`~gradellm_lens.numerics.flat_rows`) becomes the uniform map and
   the step is flagged ``flat``;
2. keep probabilities: plain Soft-NS ``r = ŝ``, Soft-NC ``r = 1 - ŝ``; π-Soft-NS/NC ``r`` with mean
   π (:mod:`.retention`, ``config.rescale``) for every π of the grid;
3. run the clean prefix and the all-masked prefix (``S0``; a :class:`StepReference`, shared by
   every method evaluated on the step) and ``n_draws`` Bernoulli draws of every keep vector through
   the model in batches of ``config.batch_size`` (:mod:`.perturb`), under ``torch.no_grad``:
   ``2 + 2·n_draws·(1 + len(pis))`` inputs, 2 + 100 by default;
4. score each draw with Soft-NS/NC (:mod:`.soft`, ``config.probability``), average over draws, and
   summarise the π curves by their normalised AUC (:mod:`.pi_soft`).

Every choice that the π-Soft paper (Huang & Chan, arXiv 2601.03089), Zhao & Aletras (2023) and
ReAGent (Zhao & Shan 2024) leave open or make differently (which probability, the π-rescaling rule,
the π grid, the perturbed positions, the number of draws) is a :class:`FaithfulnessConfig` field and
is recorded in :attr:`FaithfulnessScores.config`.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from ..encoding import check_token_ids
from ..errors import InvalidInputError, NumericalError, check_choice
from ..numerics import flat_rows
from ..result import AttributionResult
from ..targets import Target
from ..tensor_types import PositionMask, TokenIds, TokenScores
from .normalise import NORMALISE_KINDS, NormaliseKind, importance_weights
from .perturb import as_masked_forward, draw_uniforms, iter_masked_logits, step_seed, unperturbed_head
from .pi_soft import DEFAULT_PIS, check_pis, normalised_auc, pi_keep_probabilities
from .positions import check_perturbable, span_mask
from .retention import RESCALE_KINDS, RescaleKind
from .soft import (
    DEFAULT_EPSILON,
    PROBABILITY_KINDS,
    ProbabilityKind,
    plain_soft_keep,
    probability_drop,
    soft_nc,
    soft_ns,
)


@dataclass(frozen=True)
class FaithfulnessConfig:
    """How Soft-NC/NS and π-Soft-NC/NS are computed (defaults: π-Soft as in arXiv 2601.03089, Soft-NC/NS as in Zhao & Aletras 2023).

    Attributes:
        pis: π grid, strictly increasing inside (0, 1).
        n_draws: Bernoulli mask draws averaged per keep vector (1 = the original metrics).
        rescale: π-rescaling rule, ``"scale_clip"`` (default) or ``"power"``.
        normalise: base normalisation for π-Soft, ``"max"`` (default), ``"minmax"`` or ``"rank"``
            (plain Soft always uses min-max).
        probability: ``"target"`` (probability of the explained token, default) or
            ``"distribution"`` (ReAGent's whole-distribution distance).
        seed: base seed of the mask draws (combined with a hash of the prefix and target).
        batch_size: perturbed inputs per forward pass.
        eps: lower bound on the normaliser ``1 - S0`` (steps below it are flagged ``degenerate``).
    """

    pis: tuple[float, ...] = DEFAULT_PIS
    n_draws: int = 5
    rescale: RescaleKind = "scale_clip"
    normalise: NormaliseKind = "max"
    probability: ProbabilityKind = "target"
    seed: int = 0
    batch_size: int = 64
    eps: float = DEFAULT_EPSILON
    throughput_options: ClassVar[frozenset[str]] = frozenset({"batch_size"})
    """Fields that change how fast the metrics are computed, never their values."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pis", check_pis(self.pis))
        for name in ("n_draws", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InvalidInputError(f"seed must be an integer, got {self.seed!r}.")
        for name, choices in (
            ("rescale", RESCALE_KINDS),
            ("normalise", NORMALISE_KINDS),
            ("probability", PROBABILITY_KINDS),
        ):
            check_choice(name, getattr(self, name), choices)
        if not 0.0 < float(self.eps) < 1.0:
            raise InvalidInputError(f"eps must lie strictly between 0 and 1, got {self.eps!r}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy of every field."""
        out = dataclasses.asdict(self)
        out["pis"] = list(self.pis)
        return out


@dataclass(frozen=True)
class FaithfulnessScores:
    """Faithfulness of one attribution at one step. All scores lie in ``[0, 1]``; higher is better.

    Attributes:
        soft_ns: plain Soft-NS (keep ``r = ŝ``, min-max ``ŝ``).
        soft_nc: plain Soft-NC (keep ``r = 1 - ŝ``).
        pis: the π grid.
        pi_ns: π-Soft-NS at each π.
        pi_nc: π-Soft-NC at each π.
        auc_pi_ns: normalised AUC of the π-Soft-NS curve.
        auc_pi_nc: normalised AUC of the π-Soft-NC curve.
        mean_score: mean min-max normalised score over the perturbable positions, i.e. the expected
            fraction plain Soft-NS keeps (what π-Soft controls; the "inflation" axis).
        full_prob: ``p(ŷ | x)`` of the unperturbed prefix.
        s0: ``S0``, the sufficiency of the all-masked prefix.
        fallback_used: any π needed a fallback rescaling rule (see ``rules_ns`` / ``rules_nc``).
        config: the :class:`FaithfulnessConfig` used, as a dict.
        rules_ns: rescaling rule used at each π for π-Soft-NS.
        rules_nc: the same for π-Soft-NC.
        n_perturbable: number of perturbable positions.
        p_empty: ``p(ŷ | x_∅)``, the explained token's probability with every perturbable position
            masked (the all-masked input of ``S0``).
        rho: the relative drop ``ρ = (p(ŷ|x) - p(ŷ|x_∅)) / p(ŷ|x)``: how much the perturbable
            positions matter to the prediction at all. A step with small ρ is *ill-conditioned*:
            every keep vector moves ``p`` by little, so its Soft scores are mostly noise (callers
            choose a threshold; the evaluation runner's default leaves out ρ < 0.1).
        degenerate: ``1 - S0 < eps``: a numerical guard only (the normaliser is held at ``eps``);
            use ``rho`` to judge whether a step is informative.
        flat: the attribution singles out no perturbable position (all zero, or all equal), so it
            was scored as the uniform map (as Zhao & Aletras score an all-zero map); such steps are valid but uninformative.
    """

    soft_ns: float
    soft_nc: float
    pis: tuple[float, ...]
    pi_ns: tuple[float, ...]
    pi_nc: tuple[float, ...]
    auc_pi_ns: float
    auc_pi_nc: float
    mean_score: float
    full_prob: float
    s0: float
    fallback_used: bool
    config: dict[str, Any] = field(default_factory=dict)
    rules_ns: tuple[str, ...] = ()
    rules_nc: tuple[str, ...] = ()
    n_perturbable: int = 0
    degenerate: bool = False
    flat: bool = False
    p_empty: float = float("nan")
    rho: float = float("nan")

    def __post_init__(self) -> None:
        for name in ("pis", "pi_ns", "pi_nc", "rules_ns", "rules_nc"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        n = len(self.pis)
        if len(self.pi_ns) != n or len(self.pi_nc) != n:
            raise InvalidInputError(f"pi_ns/pi_nc need one value per π ({n}), got {len(self.pi_ns)}/{len(self.pi_nc)}.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> FaithfulnessScores:
        """Inverse of :meth:`to_dict` (unknown keys, e.g. ones a runner added, are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})


@dataclass(frozen=True)
class StepReference:
    """The two inputs of a step that do not depend on the scores: the clean prefix and the all-masked one.

    Every method (and every control) evaluated on the same step, perturbable positions and
    probability kind shares them, so an evaluation computes them once per step
    (:func:`step_reference`) and passes them to :func:`evaluate_step`.

    Attributes:
        tokens: ``[pos]`` the prefix.
        token_id: the explained token ``ŷ``.
        perturbable: ``[pos]`` the positions that may be masked.
        full: ``[vocab]`` float64 next-token probabilities of the clean prefix.
        empty: ``[vocab]`` float64 next-token probabilities with every perturbable position masked.
    """

    tokens: TokenIds
    token_id: int
    perturbable: PositionMask
    full: Float[Tensor, "vocab"]
    empty: Float[Tensor, "vocab"]

    @property
    def p_full(self) -> float:
        """``p(ŷ | x)``."""
        return float(self.full[self.token_id])

    @property
    def p_empty(self) -> float:
        """``p(ŷ | x_∅)``."""
        return float(self.empty[self.token_id])

    @property
    def rho(self) -> float:
        """``(p(ŷ|x) - p(ŷ|x_∅)) / p(ŷ|x)``, 0 when ``p(ŷ|x) = 0``."""
        p = self.p_full
        return (p - self.p_empty) / p if p > 0 else 0.0

    def matches(self, tokens: TokenIds, token_id: int, perturbable: PositionMask) -> bool:
        return (
            self.token_id == token_id
            and torch.equal(self.tokens, tokens)
            and torch.equal(self.perturbable, perturbable)
        )


class _NoLimits:
    """Token-id limits of a :class:`~.perturb.MaskedForward` that declares none (context, and vocabulary
    unless it has ``d_vocab``)."""

    n_ctx = sys.maxsize

    def __init__(self, d_vocab: int | None) -> None:
        self.d_vocab = sys.maxsize if d_vocab is None else d_vocab


def _check_scores(scores: TokenScores, length: int) -> TokenScores:
    values = torch.as_tensor(scores).detach().cpu()
    if values.ndim != 1 or values.shape[0] != length:
        raise InvalidInputError(
            f"scores has shape {tuple(values.shape)} but the prefix has {length} tokens; pass the step's row "
            "over its prefix, e.g. result.scores[t, : position + 1]."
        )
    bad = (~torch.isfinite(values)).nonzero().flatten().tolist()
    if bad:
        raise InvalidInputError(
            f"scores are NaN or infinite at positions {bad[:10]}; pass scores over the prefix only "
            "(rows of AttributionResult.scores are NaN after their prefix)."
        )
    return values.double()


def _perturbations(plain: Tensor, ns: Tensor, nc: Tensor, n_draws: int) -> tuple[Tensor, Tensor]:
    """Keep vectors and draw indices of the score-dependent inputs of a step, in the order
    ``evaluate_step`` reads: per draw: plain NS, plain NC; then per draw: π-NS grid, π-NC grid."""
    blocks = [plain.double().repeat(n_draws, 1), torch.cat([ns, nc]).repeat(n_draws, 1)]
    draws = [d for d in range(n_draws) for _ in range(2)]
    draws += [d for d in range(n_draws) for _ in range(ns.shape[0] + nc.shape[0])]
    return torch.cat(blocks), torch.tensor(draws, dtype=torch.long)


def _probabilities(forward, tokens: TokenIds, keep: Tensor, draws: Tensor, uniforms: Tensor, batch_size: int):
    """Yield ``(start, probs)``: float64 next-token probabilities of the perturbed inputs, batch by batch."""
    with torch.no_grad():
        for start, logits in iter_masked_logits(forward, tokens, keep, draws, uniforms, batch_size):
            if not torch.isfinite(logits).all():
                raise NumericalError("The model produced NaN/inf logits on a perturbed input.")
            yield start, torch.softmax(logits.double(), dim=-1)


def _prepare(model, prefix, target, perturbable) -> tuple[object, TokenIds, int, PositionMask]:
    """The masked forward, checked prefix, target id and perturbable mask of a step."""
    token_id = target.token_id if isinstance(target, Target) else Target(target).token_id
    forward = as_masked_forward(model)
    limits = forward if hasattr(forward, "n_ctx") else _NoLimits(getattr(forward, "d_vocab", None))
    tokens = check_token_ids(prefix, limits, "the prefix").cpu()
    valid = check_perturbable(perturbable, tokens.shape[0])
    if token_id >= limits.d_vocab:
        raise InvalidInputError(
            f"Target token id {token_id} is outside the model's vocabulary (0..{limits.d_vocab - 1})."
        )
    return forward, tokens, token_id, valid


def _head_length(valid: PositionMask) -> int:
    """Positions before the first perturbable one: never masked, identical in every perturbed input."""
    return int(valid.nonzero()[0])


def step_reference(
    model,
    prefix: TokenIds,
    target: Target | int,
    *,
    perturbable: PositionMask | None = None,
    batch_size: int = 2,
) -> StepReference:
    """Run the clean and the all-masked prefix of a step (see :class:`StepReference`).

    Args: as :func:`evaluate_step`; ``batch_size`` 1 runs the two inputs one at a time.

    Raises:
        InvalidInputError: malformed prefix, mask or target.
        NumericalError: NaN/inf logits.
    """
    forward, tokens, token_id, valid = _prepare(model, prefix, target, perturbable)
    keep = torch.stack([torch.ones(valid.shape[0], dtype=torch.float64), torch.where(valid, 0.0, 1.0).double()])
    uniforms = torch.zeros(1, tokens.shape[0], forward.d_model).to(getattr(forward, "device", "cpu"))
    with unperturbed_head(forward, tokens, _head_length(valid)):
        probs = torch.cat(
            [
                p
                for _, p in _probabilities(
                    forward, tokens, keep, torch.zeros(2, dtype=torch.long), uniforms, batch_size
                )
            ]
        )
    if not 0 <= token_id < probs.shape[-1]:
        raise InvalidInputError(
            f"Target token id {token_id} is outside the model's vocabulary (0..{probs.shape[-1] - 1})."
        )
    return StepReference(tokens, token_id, valid, probs[0].cpu(), probs[1].cpu())


def evaluate_step(
    model,
    prefix: TokenIds,
    target: Target | int,
    scores: TokenScores,
    *,
    perturbable: PositionMask | None = None,
    config: FaithfulnessConfig = FaithfulnessConfig(),
    reference: StepReference | None = None,
) -> FaithfulnessScores:
    """Soft-NS/NC and π-Soft-NS/NC of ``scores`` for the step predicting ``target`` after ``prefix``.

    Args:
        model: a TransformerLens model, or any :class:`~.perturb.MaskedForward`.
        prefix: ``[pos]`` token ids, ``tokens[: position + 1]``; the probabilities are the softmax of
            the logits at its last position.
        target: the explained token ``ŷ`` (a :class:`Target`, whose ``token_id`` is used, or an id).
        scores: ``[pos]`` finite attribution scores over ``prefix``.
        perturbable: ``[pos]`` boolean mask of the positions that may be masked; default every
            position but 0 (BOS is never perturbed; see :mod:`.positions`).
        config: metric options.
        reference: the step's :class:`StepReference` (clean and all-masked forwards), shared by
            every method evaluated on this step; computed here when None. Results are identical.

    Raises:
        InvalidInputError: malformed prefix, scores (NaN, wrong length), mask, target or config,
            or a ``reference`` of another step.
        NumericalError: the model returns NaN/inf logits on a perturbed input.
    """
    if not isinstance(config, FaithfulnessConfig):
        raise InvalidInputError(f"config must be a FaithfulnessConfig, got {type(config).__name__}.")
    forward, tokens, token_id, valid = _prepare(model, prefix, target, perturbable)
    n = tokens.shape[0]
    values = _check_scores(scores, n)
    if reference is None:
        reference = step_reference(model, tokens, token_id, perturbable=valid, batch_size=config.batch_size)
    elif not isinstance(reference, StepReference) or not reference.matches(tokens, token_id, valid):
        raise InvalidInputError(
            "reference is not the StepReference of this step (another prefix, target or perturbable mask); "
            "build it with step_reference(model, prefix, target, perturbable=...)."
        )

    minmax = importance_weights(values, valid, "minmax")
    ns, nc = pi_keep_probabilities(importance_weights(values, valid, config.normalise), valid, config.pis, config.rescale)
    keep, draws = _perturbations(plain_soft_keep(minmax, valid), ns.keep, nc.keep, config.n_draws)

    uniforms = draw_uniforms(step_seed(config.seed, tokens, token_id), config.n_draws, n, forward.d_model)
    uniforms = uniforms.to(getattr(forward, "device", "cpu"))
    full = reference.full.to(uniforms.device)
    drops = torch.empty(keep.shape[0], dtype=torch.float64)
    with unperturbed_head(forward, tokens, _head_length(valid)):
        for start, probs in _probabilities(forward, tokens, keep, draws, uniforms, config.batch_size):
            drops[start : start + probs.shape[0]] = probability_drop(full, probs, token_id, config.probability).cpu()
    drop0 = probability_drop(reference.full, reference.empty[None], token_id, config.probability)[0]

    m, k = config.n_draws, len(config.pis)
    plain = drops[: 2 * m].view(m, 2)
    curves = drops[2 * m :].view(m, 2, k)
    pi_ns = soft_ns(curves[:, 0], drop0, config.eps).mean(0).tolist()
    pi_nc = soft_nc(curves[:, 1], drop0, config.eps).mean(0).tolist()
    return FaithfulnessScores(
        soft_ns=float(soft_ns(plain[:, 0], drop0, config.eps).mean()),
        soft_nc=float(soft_nc(plain[:, 1], drop0, config.eps).mean()),
        pis=config.pis,
        pi_ns=tuple(pi_ns),
        pi_nc=tuple(pi_nc),
        auc_pi_ns=normalised_auc(config.pis, pi_ns),
        auc_pi_nc=normalised_auc(config.pis, pi_nc),
        mean_score=float(minmax[valid].mean()),
        full_prob=reference.p_full,
        s0=float(1.0 - drop0),
        fallback_used=ns.fallback_used or nc.fallback_used,
        config=config.to_dict(),
        rules_ns=ns.rules,
        rules_nc=nc.rules,
        n_perturbable=int(valid.sum()),
        degenerate=bool(drop0 < config.eps),
        flat=bool(flat_rows(values.masked_fill(~valid, float("nan"))[None])[0]),
        p_empty=reference.p_empty,
        rho=reference.rho,
    )


def evaluate_result(
    model,
    result: AttributionResult,
    *,
    span: tuple[int, int] | None = None,
    config: FaithfulnessConfig = FaithfulnessConfig(),
) -> list[FaithfulnessScores]:
    """:func:`evaluate_step` for every step of ``result`` (prefix = ``token_ids[: position + 1]``).

    Args:
        model: the model that produced ``result``.
        result: an :class:`AttributionResult` (its ``scores`` rows are cut to each prefix).
        span: perturb only positions ``start <= i < end`` of the full sequence (e.g. the user text);
            default every position but BOS.
        config: metric options.
    """
    out = []
    for t, position in enumerate(result.step_positions):
        length = position + 1
        mask = None if span is None else span_mask(length, *span)
        out.append(
            evaluate_step(
                model,
                result.token_ids[:length],
                Target(result.target_ids[t]),
                result.scores[t, :length],
                perturbable=mask,
                config=config,
            )
        )
    return out
