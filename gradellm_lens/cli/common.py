"""Arguments shared by several commands (model, device, dtype, method options)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import InvalidInputError


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct",
                        help="built-in name (smollm2-135m-instruct, gemma-3-270m, tiny-llama), hub id or local dir")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="float32 (default), bfloat16 or float16")


def load_model_from_args(args: argparse.Namespace):
    from ..models import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype)


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["layers=4", "spatial=pattern"]`` -> ``{"layers": 4, "spatial": "pattern"}`` (values parsed as JSON when possible)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"Option {pair!r} must look like key=value.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
