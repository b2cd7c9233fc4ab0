"""``gradellm-lens methods [NAME]``: the registered attribution methods, their descriptions and options.

Without a name, one block per method: its one-line description, then each option as
``name: type = default  description``. With a name, that method's module docstring (its formula and
variants) follows the block. Everything printed is plain text: :func:`plain_text` turns the
docstrings' reStructuredText roles and LaTeX formulas into readable Unicode (``Σ_ℓ ReLU(...)``).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..methods.base import AttributionMethod

_ATTRIBUTE = re.compile(r"^(\s+)(\w+): (.*)$")

_LATEX_SYMBOLS = {
    "alpha": "α", "beta": "β", "lambda": "λ", "ell": "ℓ", "varepsilon": "ε", "epsilon": "ε", "sigma": "σ",
    "approx": "≈", "cdot": "·", "cdots": "⋯", "ldots": "…", "odot": "⊙", "times": "×", "ge": "≥", "geq": "≥",
    "le": "≤", "leq": "≤", "lesssim": "≲", "in": "∈", "int": "∫", "sum": "Σ", "prod": "Π", "partial": "∂",
    "nabla": "∇", "sim": "~", "infty": "∞", "lVert": "‖", "rVert": "‖", "|": "‖", "to": "→", "cos": "cos",
    "max": "max", "min": "min", "exp": "exp", "log": "log", "neq": "≠", "pm": "±",
}  # fmt: skip
_LATEX_DROPPED = ("textstyle", "displaystyle", "big", "Big", "bigg", "left", "right", ",", ";", "!", "quad", "qquad")
_LATEX_PREFIX = frozenset({"partial", "nabla", "sum", "prod", "int"})
_LATEX_ACCENTS = {"bar": "\u0304", "hat": "\u0302", "tilde": "\u0303"}
_LATEX_GROUPS = frozenset({"text", "operatorname", "mathrm", "mathbf", "mathbb", "mathcal", "sqrt", *_LATEX_ACCENTS})
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):`~?([^`]+)`")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("methods", help="list attribution methods with their options")
    p.add_argument("name", nargs="?", default=None, help="show this method's formula and variants in full")
    return p


def format_type(tp) -> str:
    """``Literal["a", "b"]`` -> ``'a' | 'b'``; unions joined with ``|``; classes by name."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(format_type(arg) for arg in typing.get_args(tp))
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(format_type(a) for a in typing.get_args(tp))}]"
    return getattr(tp, "__name__", str(tp))


def option_docs(options_cls: type) -> dict[str, str]:
    """Descriptions from the ``Attributes:`` section of an options dataclass docstring."""
    docs: dict[str, str] = {}
    lines = inspect.getdoc(options_cls).splitlines() if options_cls.__doc__ else []
    in_section, current, indent = False, None, 0
    for line in lines:
        if line.strip() == "Attributes:":
            in_section = True
            continue
        match = _ATTRIBUTE.match(line)
        if in_section and match and (current is None or len(match.group(1)) == indent):
            indent, current = len(match.group(1)), match.group(2)
            docs[current] = match.group(3).strip()
        elif in_section and current and line.strip() and len(line) - len(line.lstrip()) > indent:
            docs[current] += " " + line.strip()
        elif in_section and line.strip():
            in_section = False
    return docs


def _latex_group(text: str, start: int) -> tuple[str, int]:
    """The ``{...}`` group opening at ``text[start]`` (nested braces allowed): ``(content, end)``."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1 : i], i + 1
    return text[start + 1 :], len(text)


def latex_text(math: str) -> str:
    """A LaTeX formula as plain Unicode text: ``\\sum_{c \\in h} g_{c}`` -> ``Σ_(c ∈ h) g_c``."""
    out, i = [], 0
    while i < len(math):
        ch = math[i]
        if ch == "\\":
            match = re.match(r"\\([A-Za-z]+|.)", math[i:])
            name, i = match.group(1), i + len(match.group(0))
            if name in _LATEX_GROUPS:
                content, i = _latex_group(math, i) if i < len(math) and math[i] == "{" else (math[i : i + 1], i + 1)
                inner = content if name == "text" else latex_text(content)
                out.append(f"√({inner})" if name == "sqrt" else inner + _LATEX_ACCENTS.get(name, ""))
            elif name == "frac":
                top, i = _latex_group(math, i)
                bottom, i = _latex_group(math, i)
                out.append(f"({latex_text(top)})/({latex_text(bottom)})")
            elif name in _LATEX_DROPPED:
                out.append(" " if name in (",", ";", "quad", "qquad") else "")
            elif name in "{}":
                out.append(name)
            else:
                out.append(_LATEX_SYMBOLS.get(name, name))
                if name in _LATEX_PREFIX:  # "\\partial y" -> "∂y"
                    while i < len(math) and math[i] == " ":
                        i += 1
        elif ch in "^_" and i + 1 < len(math) and math[i + 1] == "{":
            content, i = _latex_group(math, i + 1)
            inner = latex_text(content)
            out.append(ch + (inner if len(inner) == 1 else f"({inner})"))
        elif ch in "{}":
            i += 1
        else:
            out.append(ch)
            i += 1
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def _math_block_line(line: str) -> str:
    """One line of a ``.. math::`` block: alignment ``&`` and line breaks ``\\\\`` removed."""
    formula, _, comment = line.rstrip().removesuffix("\\\\").partition("&&")
    formula = latex_text(formula.replace("&", ""))
    comment = latex_text(comment.strip())
    return formula + (f"    ({comment})" if comment else "")


def _literal(code: str) -> str:
    """A ``literal``'s text; LaTeX-style indices in it (``c^{l,h}_i``) are converted too."""
    return latex_text(code) if re.search(r"[\^_]\{|\\[A-Za-z]", code) else code


def plain_text(doc: str) -> str:
    """A docstring as plain text: reST roles, literals, emphasis and LaTeX (inline and blocks) converted."""
    doc = re.sub(r":math:`([^`]+)`", lambda m: latex_text(" ".join(m.group(1).split())), doc)
    doc = re.sub(r"``([^`]+)``", lambda m: _literal(" ".join(m.group(1).split())), doc)
    lines, in_math = [], False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith(".. math::"):
            in_math = True
            continue
        if in_math and stripped and not line.startswith(" "):
            in_math = False
        if in_math:
            lines.append(("    " + _math_block_line(stripped)) if stripped else "")
            continue
        line = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] + ("()" if "func" in m.group(0) else ""), line)
        line = re.sub(r"\*\*([^*]+)\*\*", r"\1", line)
        line = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"\1", line)
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def describe_method(cls: type[AttributionMethod]) -> list[str]:
    """The block printed for one method: description line, then one line per option."""
    from ..methods.base import SIGN_HANDLING

    summary = plain_text((inspect.getdoc(cls) or "").splitlines()[0])
    lines = [f"{cls.method_name:<22} {summary}{' (signed)' if cls.signed else ''}"]
    rows: list[tuple[str, str, str]] = []
    variants = getattr(cls, "variants", None)
    if variants:
        rows.append(("variant", " | ".join(repr(v) for v in variants), "'default'"))
    if cls.signed:
        rows.append(("sign", " | ".join(repr(s) for s in SIGN_HANDLING), "'positive'"))
    hints = typing.get_type_hints(cls.Options)
    docs = option_docs(cls.Options)
    for field in dataclasses.fields(cls.Options):
        rows.append((field.name, format_type(hints[field.name]), repr(field.default)))
    for name, tp, default in rows:
        text = plain_text(docs.get(name, ""))
        lines.append(f"    {name}: {tp} = {default}" + (f"  -- {text}" if text else ""))
    return lines


def run(args: argparse.Namespace) -> int:
    from ..methods.base import get_method, list_methods

    names = [args.name] if args.name else list_methods()
    for name in names:
        cls = get_method(name)
        print("\n".join(describe_method(cls)))
        if args.name:
            print("\n" + plain_text(inspect.getdoc(inspect.getmodule(cls)) or ""))
    return 0
