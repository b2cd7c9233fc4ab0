"""The attribution-method interface and registry (inseq-style: a ``method_name`` class attribute).

Every method maps a token sequence and a list of :class:`~gradellm_lens.targets.Step` to a
``[step, pos]`` score matrix: row ``t`` scores the prefix ``tokens[: steps[t].position + 1]`` for
``steps[t].target`` and is NaN beyond it. Methods that decompose over model components also
return ``[step, layer, head, pos]`` contributions.

Subclasses declare ``method_name``, an ``Options`` frozen dataclass (their hyper-parameters), the
names of those options that only change speed (``throughput_options``), and implement either ``_attribute_step`` (one prefix, one target) or ``_attribute`` (all steps, for
methods that share work across steps). Signed methods set ``signed = True``; only they take the
``sign`` option, which turns their scores non-negative: ``"positive"`` (default, the positive part,
matching Grad-ELLM's ReLU), ``"abs"``, or ``"raw"`` (keep the sign). Unsigned methods refuse it (it
could not change their scores, and would only give equal computations different descriptions).
"""

from __future__ import annotations

import dataclasses
from abc import ABC
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ..encoding import check_token_ids
from ..errors import InvalidInputError, NumericalError, check_choice, unknown_name_error
from ..models.capabilities import ModelInfo, model_info
from ..numerics import first_nonfinite_row, prefix_mask
from ..registry import Registry
from ..targets import Step, Target
from ..tensor_types import StepLayerHeadScores, StepScores, TokenIds, TokenScores

SignHandling = Literal["positive", "abs", "raw"]
SIGN_HANDLING: tuple[str, ...] = ("positive", "abs", "raw")

METHODS: Registry[type[AttributionMethod]] = Registry("attribution method", "method_name")
"""Every attribution method by ``method_name``; :mod:`gradellm_lens.methods` imports the built-in ones."""


@dataclass(frozen=True)
class MethodOutput:
    """Scores of one method on one sequence.

    Attributes:
        scores: ``[step, pos]`` float32 scores, NaN for positions after each step's prefix.
        layer_head: ``[step, layer, head, pos]`` per-component contributions (before any ReLU),
            or None for methods without a decomposition.
        layers: model layer index of each ``layer`` row of ``layer_head``.
        diagnostics: JSON-friendly facts about how the scores were computed (e.g. which gradient
            path ran, integrated gradients' completeness gap per step); recorded with results.
    """

    scores: StepScores
    layer_head: StepLayerHeadScores | None = None
    layers: tuple[int, ...] = ()
    diagnostics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoOptions:
    """Options of a method without hyper-parameters."""


def check_choices(options: Any, choices: dict[str, Sequence[str]], method: str) -> None:
    """Raise :class:`InvalidInputError` (with "Did you mean") for an option of ``options`` outside its ``choices``."""
    for name, allowed in choices.items():
        check_choice(f"{method} option {name}", getattr(options, name), allowed)


def check_flag(options: Any, name: str, method: str) -> None:
    """Raise :class:`InvalidInputError` unless option ``name`` of ``options`` is a bool (``"no"`` is not false)."""
    value = getattr(options, name)
    if not isinstance(value, bool):
        raise InvalidInputError(
            f"{method} option {name} must be True or False, got {value!r} ({type(value).__name__})."
        )


class AttributionMethod(ABC):
    """Base class: validation, sign handling, NaN padding, and the per-step loop."""

    method_name: ClassVar[str]
    signed: ClassVar[bool] = False
    Options: ClassVar[type] = NoOptions
    throughput_options: ClassVar[frozenset[str]] = frozenset()
    """Options that change how fast the scores are computed, never the scores (batch sizes, shared
    work, the gradient path): runs that differ only in them are one computation."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        METHODS.register(cls)

    def __init__(self, model, *, sign: SignHandling | None = None, **options: Any) -> None:
        self.sign = self._check_sign(sign)
        self.model = model
        self.info: ModelInfo = model_info(model)
        self.options = self._make_options(options)

    @classmethod
    def _check_sign(cls, sign: object) -> SignHandling | None:
        """The sign handling of a signed method (default ``"positive"``); None for an unsigned one."""
        if sign is not None:
            check_choice("sign", sign, SIGN_HANDLING)
        if not cls.signed:
            if sign is not None:
                signed = ", ".join(name for name in list_methods() if get_method(name).signed)
                raise InvalidInputError(
                    f"{cls.method_name} gives unsigned scores, so sign={sign!r} cannot change them; drop the sign "
                    f"option for this method (it applies to the signed methods: {signed})."
                )
            return None
        return sign or "positive"

    @classmethod
    def option_names(cls) -> set[str]:
        """Every keyword the constructor accepts besides ``model``: the Options fields, ``sign`` for
        signed methods, ``variant`` for methods with named variants."""
        names = {f.name for f in dataclasses.fields(cls.Options)}
        return names | ({"sign"} if cls.signed else set()) | ({"variant"} if getattr(cls, "variants", None) else set())

    @classmethod
    def _make_options(cls, options: dict[str, Any]):
        fields = {f.name for f in dataclasses.fields(cls.Options)}
        for key in options:
            if key not in fields:
                raise unknown_name_error(f"option for method {cls.method_name!r}:", key, fields or ["(none)"])
        return cls.Options(**options)

    def describe(self) -> dict[str, Any]:
        """Method name, options and (signed methods) sign handling, as recorded in results."""
        sign = {"sign": self.sign} if self.signed else {}
        return {"method": self.method_name, **sign, **dataclasses.asdict(self.options)}

    # ---- public entry point -------------------------------------------------------------------
    def attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        """Attribute every step of ``steps`` over its prefix of ``tokens`` (1-D token ids).

        Raises:
            InvalidInputError: bad tokens (empty, not 1-D integer ids, out of vocabulary, longer
                than the context) or steps (empty, position outside the sequence, bad target).
            NumericalError: NaN/inf in the model's objective or gradients, or in the scores inside
                a step's prefix: such scores are never returned as numbers.
        """
        tokens = self._check_tokens(tokens)
        steps = self._check_steps(tokens, steps)
        out = self._attribute(tokens, steps)
        n = tokens.shape[0]
        scores = _pad_positions(out.scores.float().cpu(), n)
        if self.signed and self.sign != "raw":
            scores = scores.clamp(min=0) if self.sign == "positive" else scores.abs()
        inside = prefix_mask([s.position for s in steps], n)
        scores = scores.masked_fill(~inside, float("nan"))
        layer_head = out.layer_head
        if layer_head is not None:
            layer_head = _pad_positions(layer_head.float().cpu(), n)
            layer_head = layer_head.masked_fill(~inside[:, None, None, :], float("nan"))
        for what, x in (("scores", scores), ("per-layer/head scores", layer_head)):
            if x is not None and (row := first_nonfinite_row(x, inside)) is not None:
                raise NumericalError(
                    f"{self.method_name} produced NaN/inf {what} inside the prefix of step {row} (position "
                    f"{steps[row].position}); the model's activations or gradients are not finite there."
                )
        return MethodOutput(scores=scores, layer_head=layer_head, layers=tuple(out.layers), diagnostics=out.diagnostics)

    # ---- extension points -----------------------------------------------------------------------
    def _attribute(self, tokens: TokenIds, steps: Sequence[Step]) -> MethodOutput:
        """Default: one independent computation per step, via :meth:`_attribute_step`."""
        n = tokens.shape[0]
        rows = [self._attribute_step(tokens[: s.position + 1], s.target).float().cpu() for s in steps]
        return MethodOutput(scores=torch.stack([_pad_positions(row, n) for row in rows]))

    def _attribute_step(self, prefix: TokenIds, target: Target) -> TokenScores:
        raise NotImplementedError(f"{type(self).__name__} implements neither _attribute nor _attribute_step")

    # ---- validation -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _check_tokens(self, tokens: Tensor | Sequence[int]) -> TokenIds:
        return check_token_ids(tokens, self.info, "the token sequence").to(self.device)

    def _check_steps(self, tokens: TokenIds, steps: Sequence[Step]) -> list[Step]:
        try:
            steps = list(steps) if not isinstance(steps, (Step, str)) else None
        except TypeError:
            steps = None
        if steps is None:
            raise InvalidInputError("steps must be a list of Step objects (e.g. [Step(position, Target(token_id))]).")
        if not steps:
            raise InvalidInputError("No steps to attribute: pass at least one Step.")
        for step in steps:
            if not isinstance(step, Step):
                raise InvalidInputError(f"steps must contain Step objects, got {type(step).__name__}.")
            if not 0 <= step.position < tokens.shape[0]:
                raise InvalidInputError(
                    f"Step position {step.position} is outside the sequence (length {tokens.shape[0]})."
                )
            step.target.validate(self.info.d_vocab)
        return steps


def _pad_positions(x: Tensor, n: int) -> Tensor:
    """NaN-pad the last (position) dimension of ``x`` to length ``n``."""
    return torch.nn.functional.pad(x, (0, n - x.shape[-1]), value=float("nan"))


def list_methods() -> list[str]:
    """Names of all registered attribution methods."""
    return METHODS.names()


def get_method(name: str) -> type[AttributionMethod]:
    """The method class registered as ``name``; unknown names raise with a suggestion."""
    return METHODS.get(name)


def make_method(method: str | AttributionMethod, model, **options: Any) -> AttributionMethod:
    """Instantiate ``method`` (a registered name) for ``model``; an instance is returned unchanged."""
    if isinstance(method, AttributionMethod):
        if options:
            raise InvalidInputError("Options cannot be combined with an already constructed method instance.")
        return method
    return get_method(method)(model, **options)
