"""Arguments shared by several commands (model, device, dtype, method options)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import InvalidInputError
from ..evaluation.specs import parse_options

__all__ = ["DefaultsHelpFormatter", "add_model_args", "argument_type", "load_model_from_args", "parse_options"]


def add_model_args(parser: argparse.ArgumentParser) -> None:
    from ..models.catalog import builtin_model_names

    parser.add_argument("--model", default="smollm2-135m-instruct",
                        help=f"built-in name ({', '.join(builtin_model_names())}), hub id or local dir")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="float32 (default), bfloat16 or float16")


def argument_type(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type=`` from a converter raising :class:`~gradellm_lens.errors.InvalidInputError`,
    whose message argparse then shows (for other errors it only says "invalid <name> value")."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except InvalidInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = convert.__name__
    return parse


def load_model_from_args(args: argparse.Namespace):
    from ..models import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that states every option's default: ``(default: X)`` is appended unless the text already
    says ``default`` (options whose default is computed, e.g. "default: the task's") or the option
    is a flag (no value to default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"
