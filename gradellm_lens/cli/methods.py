"""``gradellm-lens methods [NAME]``: the registered attribution methods, their descriptions and options.

Without a name, one block per method: its one-line description, then each option as
``name: type = default  description``. With a name, that method's module docstring (its formula and
variants) follows the block.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing

from ..methods.base import SIGN_HANDLING, AttributionMethod, get_method, list_methods

_ATTRIBUTE = re.compile(r"^(\s+)(\w+): (.*)$")


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


def describe_method(cls: type[AttributionMethod]) -> list[str]:
    """The block printed for one method: description line, then one line per option."""
    summary = (inspect.getdoc(cls) or "").splitlines()[0]
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
        text = docs.get(name, "").replace("``", "")
        lines.append(f"    {name}: {tp} = {default}" + (f"  -- {text}" if text else ""))
    return lines


def run(args: argparse.Namespace) -> int:
    names = [args.name] if args.name else list_methods()
    for name in names:
        cls = get_method(name)
        print("\n".join(describe_method(cls)))
        if args.name:
            print("\n" + (inspect.getdoc(inspect.getmodule(cls)) or ""))
    return 0
