"""Method specifications of an evaluation run: ``name[:variant][+key=value...]``.

Examples: ``grad_ellm`` (default variant), ``grad_ellm:reference`` (the released code's variant),
``grad_ellm+layers=4``, ``integrated_gradients+n_steps=20``. The whole string is the method's
*label* in results and tables, so two specs of the same method with different options are two
rows. ``all`` expands to every registered method. Values are parsed as JSON where possible
(``layers=[28,29]``, ``residual_weight=0.5``), else kept as strings.

Refused when parsed (before any model is loaded): an unknown method, variant or ``sign`` (with a
suggestion), an empty variant (``grad_ellm:``), an option given twice (``+layers=1+layers=2``) and
a label given twice. Refused when built for a model (:func:`build_methods`): two labels for the
same computation, i.e. equal *resolved* options (``grad_ellm``, ``grad_ellm:default`` and
``grad_ellm+layers=1`` all resolve to Grad-ELLM on the last layer), so that no computation runs
twice under two names. Options that only change speed (each method class names them in its
``throughput_options``, read by :func:`without_throughput`) and the variant's name (its options
are compared instead) do not count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError, check_choice
from ..methods.base import SIGN_HANDLING, AttributionMethod, get_method, list_methods, make_method

def without_throughput(options: dict[str, Any], owner: Any) -> dict[str, Any]:
    """``options`` without those that ``owner`` (a method or a metrics configuration, or their class)
    marks as changing speed only (its ``throughput_options``), so that a rerun may use another batch
    size or gradient path and still count as the same computation."""
    speed_only = getattr(owner, "throughput_options", frozenset())
    return {k: v for k, v in options.items() if k not in speed_only}


@dataclass(frozen=True)
class MethodSpec:
    """One method of a run.

    Attributes:
        name: registered method name.
        options: options passed to the method (``variant`` included).
        label: how results and tables name it (default: the spec string).
    """

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        cls = get_method(self.name)  # unknown names raise with a suggestion
        if "variant" in self.options and not getattr(cls, "variants", None):
            raise InvalidInputError(f"Method {self.name!r} has no variants (':{self.options['variant']}' given).")
        if "variant" in self.options:
            check_choice(f"{self.name} variant", self.options["variant"], cls.variants)
        if "sign" in self.options:
            check_choice("sign", self.options["sign"], SIGN_HANDLING)
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def build(self, model) -> AttributionMethod:
        """The method instance for ``model`` (options validated by the method)."""
        return make_method(self.name, model, **self.options)


def parse_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["layers=4", "spatial=pattern"]`` -> ``{"layers": 4, "spatial": "pattern"}``.

    Values are parsed as JSON when possible, else kept as strings; a pair without ``=``, an empty
    key and a key given twice are refused.
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInputError(f"Option {pair!r} must look like key=value.")
        if key in out:
            raise InvalidInputError(f"Option {key!r} is given twice ({key}={json.dumps(out[key])} and {pair!r}).")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets, so that ``layers=[1,2]`` stays one piece."""
    parts, depth, current = [], 0, []
    for ch in text:
        depth += ch in "[{("
        depth -= ch in "]})"
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_method_spec(text: str) -> MethodSpec:
    """``"grad_ellm:reference+layers=4"`` -> ``MethodSpec("grad_ellm", {"variant": "reference", "layers": 4})``."""
    text = text.strip()
    head, *pairs = _split_top_level(text, "+")
    name, colon, variant = head.partition(":")
    if not name:
        raise InvalidInputError(f"Method spec {text!r} has no method name (format: name[:variant][+key=value]).")
    if colon and not variant:
        raise InvalidInputError(f"Method spec {text!r} has an empty variant after ':'; name one or drop the ':'.")
    options = parse_options(pairs)
    if colon and "variant" in options:
        raise InvalidInputError(f"Method spec {text!r} gives the variant twice (':{variant}' and '+variant=').")
    if colon:
        options = {"variant": variant, **options}
    return MethodSpec(name, options, label=text)


def parse_method_specs(methods: str | Sequence[str | MethodSpec]) -> list[MethodSpec]:
    """Specs from a comma-separated string or a list of strings / specs; ``all`` = every method."""
    items = _split_top_level(methods, ",") if isinstance(methods, str) else list(methods)
    specs: list[MethodSpec] = []
    for item in items:
        if isinstance(item, MethodSpec):
            specs.append(item)
        elif item.strip() == "all":
            specs.extend(MethodSpec(name) for name in list_methods())
        elif item.strip():
            specs.append(parse_method_spec(item))
    if not specs:
        raise InvalidInputError(f"No methods given; choose from {', '.join(list_methods())} (or 'all').")
    labels = [s.label for s in specs]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise InvalidInputError(f"Method label(s) given twice: {', '.join(duplicates)}.")
    return specs


def resolved_options(method: AttributionMethod) -> dict[str, Any]:
    """What a method computes: its described options without the variant's name and throughput knobs."""
    return {k: v for k, v in without_throughput(method.describe(), method).items() if k != "variant"}


def build_methods(specs: Sequence[MethodSpec], model) -> dict[str, AttributionMethod]:
    """Label -> method instance for ``model``; two labels for the same computation are refused.

    Raises:
        InvalidInputError: a method's options are invalid for ``model``, or two specs resolve to
            the same options (the message names both labels).
    """
    built: dict[str, AttributionMethod] = {}
    seen: dict[str, str] = {}
    for spec in specs:
        method = spec.build(model)
        key = json.dumps(resolved_options(method), sort_keys=True, default=str)
        if key in seen:
            raise InvalidInputError(
                f"Methods {seen[key]!r} and {spec.label!r} are the same computation (same resolved options); "
                "keep one of them."
            )
        seen[key] = spec.label
        built[spec.label] = method
    return built
