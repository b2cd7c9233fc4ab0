r"""Per-head activation patching and attribution patching at ``hook_z``, in both directions.

A *clean* prompt :math:`x` and a *corrupted* prompt :math:`\tilde x` of the same length differ
where the behaviour is decided (a name, a country, a repeated sequence); the metric :math:`M` is
the mean over steps :math:`t` of the step's target value (a :class:`~gradellm_lens.targets.Target`
at position :math:`p_t`: a logit, a logit difference, a log-probability),
:math:`M(x) = \frac1T \sum_t y_t(\text{logits}(x)[p_t])`. Write :math:`z_h(x)` for head
:math:`h = (\ell, j)`'s ``blocks.ℓ.attn.hook_z[:, :, j]`` on :math:`x` (its attention-weighted value
mix at every position, the input of o_proj), and :math:`M(x \mid z_h \leftarrow a)` for the
metric when that activation is replaced by :math:`a` at every position.

**Activation patching** (:func:`activation_patching`; Vig et al. 2020, Meng et al. 2022, Wang et
al. 2022; the ground truth), one head at a time:

.. math::

    E^{\text{noising}}_h = M(x \mid z_h \leftarrow z_h(\tilde x)) - M(x), \qquad
    E^{\text{denoising}}_h = M(\tilde x \mid z_h \leftarrow z_h(x)) - M(\tilde x)

"noising" patches the corrupted activation into the clean run (what the clean behaviour
*needs*: negative for a head the metric relies on); "denoising" patches the clean activation into
the corrupted run (what *suffices* to restore it: positive). The heads are batched, one head per
batch row, with the resample ablation of :mod:`.ablation` (the reference is the other prompt's
``hook_z``, position-aligned), so each direction costs ``2 + ceil(heads / batch_size)`` forward
passes of ``batch_size`` rows.

**Attribution patching** (:func:`attribution_patching`; Nanda 2023, "Attribution patching:
activation patching at industrial scale"; Syed et al. 2023): the first-order Taylor estimate of
the same effects from one forward and one backward of the batch ``[x, x̃]``,

.. math::

    \hat E^{\text{noising}}_h = \sum_{i, c} \big(z_h(\tilde x) - z_h(x)\big)_{i,c}\,
        \frac{\partial M}{\partial z_{h,i,c}}(x), \qquad
    \hat E^{\text{denoising}}_h = \sum_{i, c} \big(z_h(x) - z_h(\tilde x)\big)_{i,c}\,
        \frac{\partial M}{\partial z_{h,i,c}}(\tilde x)

(:math:`i` positions, :math:`c` the head's ``d_head`` channels; the denoising form is Nanda's and
TransformerLens' ``attribution_patching``). It is exact where :math:`M` is linear in
:math:`z_h` and degrades where attention saturates (e.g. a head's pattern flips between the runs).

:class:`PatchingResult` holds the ``[layer, head]`` effects of either method;
:meth:`PatchingResult.importance` orients them so that a positive value means "the head carries
the clean behaviour" (:math:`-E^{\text{noising}}`, :math:`+E^{\text{denoising}}`), optionally as a
fraction of the clean - corrupted gap :math:`M(x) - M(\tilde x)`. Both functions take a
``TransformerBridge`` (TransformerLens 4.x) or a ``HookedTransformer`` (3.x): only the hook names
of :func:`~gradellm_lens.capture.hook_name` are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..capture import capture_gradients, hook_name
from ..capture.recording import as_batch
from ..errors import InvalidInputError, check_choice
from ..models.capabilities import model_info
from ..targets import Step, Target, as_index, as_steps, stacked_values
from ..tensor_types import HeadScores, TokenIds
from .ablation import Ablation, collect_reference
from .effects import ablation_effects
from .importance import HeadImportance

PatchingMethod = Literal["activation", "attribution"]
PatchingDirection = Literal["both", "noising", "denoising"]
Direction = Literal["noising", "denoising"]
DIRECTIONS: tuple[str, ...] = ("noising", "denoising")
Metric = Target | Sequence[Step]


@dataclass(frozen=True)
class PatchingResult:
    """Per-head effects of patching ``hook_z`` (module docstring for the formulas).

    Attributes:
        noising: ``[layer, head]`` :math:`E^{\\text{noising}}` (clean run, corrupted activation), or
            None when that direction was not computed.
        denoising: ``[layer, head]`` :math:`E^{\\text{denoising}}` (corrupted run, clean activation), or None.
        layers: model layer of each row.
        clean_metric, corrupted_metric: :math:`M(x)` and :math:`M(\\tilde x)`, unpatched.
        method: ``"activation"`` (measured) or ``"attribution"`` (first-order estimate).
    """

    noising: HeadScores | None
    denoising: HeadScores | None
    layers: tuple[int, ...]
    clean_metric: float
    corrupted_metric: float
    method: PatchingMethod

    def __post_init__(self) -> None:
        if self.noising is None and self.denoising is None:
            raise InvalidInputError("A patching result needs the noising or the denoising effects.")
        for name in DIRECTIONS:
            value = getattr(self, name)
            if value is not None:
                value = torch.as_tensor(value).detach().float().cpu()
                if value.ndim != 2 or value.shape[0] != len(self.layers):
                    raise InvalidInputError(f"{name} must be [layer, head] with one row per layer.")
                object.__setattr__(self, name, value)
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))

    @property
    def gap(self) -> float:
        """:math:`M(x) - M(\\tilde x)`: how much the corruption changes the metric."""
        return self.clean_metric - self.corrupted_metric

    def effects(self, direction: Direction) -> HeadScores:
        """The raw ``[layer, head]`` effects of one direction."""
        check_choice("direction", direction, DIRECTIONS)
        value = getattr(self, direction)
        if value is None:
            raise InvalidInputError(f"This result has no {direction} effects; compute it with direction='both'.")
        return value

    def importance(self, direction: Direction, *, normalise: bool = False) -> HeadImportance:
        """Oriented effects: positive = the head carries the clean behaviour (``-noising``, ``+denoising``).

        With ``normalise`` the values are fractions of :attr:`gap` (refused when the gap is 0).
        """
        value = self.effects(direction) * (-1.0 if direction == "noising" else 1.0)
        if normalise:
            if self.gap == 0:
                raise InvalidInputError("The clean and corrupted metrics are equal: there is no gap to normalise by.")
            value = value / self.gap
        return HeadImportance(value, self.layers, f"{self.method}_patching:{direction}")


def _check_pair(model, clean: TokenIds, corrupted: TokenIds, metric: Metric) -> tuple[Tensor, list[Step]]:
    """``[2, pos]`` batch of the pair and the checked steps."""
    clean, corrupted = torch.as_tensor(clean), torch.as_tensor(corrupted)
    if clean.ndim != 1 or corrupted.ndim != 1:
        raise InvalidInputError(
            f"clean and corrupted must each be one prompt's [pos] token ids, got shapes {tuple(clean.shape)} "
            f"and {tuple(corrupted.shape)}; loop over pairs."
        )
    if clean.shape != corrupted.shape:
        raise InvalidInputError(
            f"The clean prompt has {clean.shape[0]} tokens and the corrupted one {corrupted.shape[0]}: patching "
            "replaces activations position by position, so both must have the same length."
        )
    steps = as_steps(clean, metric)
    d_vocab = model_info(model).d_vocab
    for step in steps:
        step.target.validate(d_vocab)
    return as_batch(model, torch.stack([clean, corrupted])), steps


def _layers(model, layers: Sequence[int] | None) -> list[int]:
    n = model_info(model).n_layers
    if layers is None:
        return list(range(n))
    chosen = sorted({as_index(layer, "Each layer in layers") for layer in layers})
    if not chosen or chosen[-1] >= n:
        raise InvalidInputError(f"layers must be a non-empty subset of 0..{n - 1}, got {list(layers)}.")
    return chosen


def _directions(direction: PatchingDirection) -> tuple[str, ...]:
    if direction == "both":
        return DIRECTIONS
    if direction not in DIRECTIONS:
        raise InvalidInputError(f"direction must be 'both', 'noising' or 'denoising', got {direction!r}.")
    return (direction,)


@torch.no_grad()
def activation_patching(
    model,
    clean: TokenIds,
    corrupted: TokenIds,
    metric: Metric,
    *,
    direction: PatchingDirection = "both",
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
) -> PatchingResult:
    """Patch each head's ``hook_z`` alone between the two runs and measure the metric (the ground truth).

    Args:
        model: a ``TransformerBridge`` or ``HookedTransformer``.
        clean, corrupted: ``[pos]`` token ids of equal length.
        metric: a :class:`Target` read at the last position (e.g. ``Target(io, contrast=s)``, a logit
            difference), or a list of :class:`Step` (the metric is the mean of their values).
        direction: ``"noising"`` (corrupted into clean), ``"denoising"`` (clean into corrupted) or ``"both"``.
        layers: the layers whose heads are patched (default: all); the result covers only them.
        batch_size: heads patched per forward pass (one head per batch row).

    Raises:
        InvalidInputError: prompts of different lengths or not 1-D, a metric outside the vocabulary
            or the sequence, unknown direction or layers.
        NumericalError: NaN/inf logits at a metric position (named, with the patch that caused them).
    """
    batch, steps = _check_pair(model, clean, corrupted, metric)
    chosen, n_heads = _layers(model, layers), model_info(model).n_heads
    heads = [(layer, h) for layer in chosen for h in range(n_heads)]
    out, metrics = {}, {}
    for name in _directions(direction):
        run, source = (batch[0], batch[1]) if name == "noising" else (batch[1], batch[0])
        reference = collect_reference(model, [source], hooks=("z",), layers=chosen)
        patches = [Ablation(heads=[head], mode="resample", reference=reference, source=0) for head in heads]
        effects = ablation_effects(model, run, steps, patches, batch_size=batch_size)
        out[name] = torch.tensor([-e.score_drop for e in effects]).reshape(len(chosen), n_heads)
        metrics[name] = effects[0].clean_score
    if len(metrics) < 2:  # the other run's unpatched metric: one more forward
        values = _metric_values(model, batch, steps)
        metrics = {"noising": float(values[0]), "denoising": float(values[1])}
    return PatchingResult(
        out.get("noising"), out.get("denoising"), tuple(chosen), metrics["noising"], metrics["denoising"], "activation"
    )


def _metric_values(model, batch: Tensor, steps: Sequence[Step]) -> Tensor:
    """:math:`M` of each row of ``batch`` (one forward)."""
    logits = model(batch)[:, [s.position for s in steps]]
    return stacked_values([s.target for s in steps], logits).float().mean(dim=-1)


def attribution_patching(
    model,
    clean: TokenIds,
    corrupted: TokenIds,
    metric: Metric,
    *,
    layers: Sequence[int] | None = None,
) -> PatchingResult:
    """First-order estimates of both directions' per-head effects: one forward and one backward of ``[clean, corrupted]``.

    Arguments as :func:`activation_patching`. The gradient of each row's metric is taken with
    respect to that row's ``hook_z`` (rows are independent, so one backward of their sum gives
    both); parameter ``.grad`` buffers are never written.
    """
    batch, steps = _check_pair(model, clean, corrupted, metric)
    chosen = _layers(model, layers)
    names = [hook_name("z", layer) for layer in chosen]
    targets = [s.target for s in steps]

    def objective(logits: Tensor) -> Tensor:  # logits [2, step, vocab]
        return stacked_values(targets, logits).float().mean(dim=-1).sum()

    captured = capture_gradients(
        model, batch, grad_names=names, objective=objective, logit_positions=[s.position for s in steps]
    )
    values = stacked_values(targets, captured.logits).float().mean(dim=-1)
    noising, denoising = [], []
    for name in names:
        z, grad = captured.activations[name].float(), captured.gradients[name].float()  # [2, pos, head, d_head]
        delta = z[1] - z[0]  # corrupted - clean
        noising.append((delta * grad[0]).sum(dim=(0, 2)))
        denoising.append((-delta * grad[1]).sum(dim=(0, 2)))
    return PatchingResult(
        torch.stack(noising), torch.stack(denoising), tuple(chosen), float(values[0]), float(values[1]), "attribution"
    )


__all__ = [
    "DIRECTIONS",
    "Direction",
    "PatchingDirection",
    "PatchingMethod",
    "PatchingResult",
    "activation_patching",
    "attribution_patching",
]
