"""Method specifications of an evaluation run: ``name[:variant][+key=value...]``.

Examples: ``grad_ellm`` (default variant), ``grad_ellm:reference`` (the released code's variant),
``grad_ellm+layers=4``, ``integrated_gradients+n_steps=20``. The whole string is the method's
*label* in results and tables, so two specs of the same method with different options are two
rows. ``all`` expands to every registered method. Values are parsed as JSON where possible
(``layers=[28,29]``, ``residual_weight=0.5``), else kept as strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..cli.common import parse_options
from ..errors import InvalidInputError
from ..methods.base import AttributionMethod, get_method, list_methods, make_method


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
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def build(self, model) -> AttributionMethod:
        """The method instance for ``model`` (options validated by the method)."""
        return make_method(self.name, model, **self.options)


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
    name, _, variant = head.partition(":")
    if not name:
        raise InvalidInputError(f"Method spec {text!r} has no method name (format: name[:variant][+key=value]).")
    options: dict[str, Any] = {"variant": variant} if variant else {}
    options.update(parse_options(pairs))
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
