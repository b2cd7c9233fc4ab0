"""``gradellm-lens demo``: Grad-ELLM on the default model for a built-in prompt, printed and as HTML."""

from __future__ import annotations

import argparse

from .common import add_model_args

DEMO_PROMPT = "The Eiffel Tower is in the city of"
"""A plain prompt whose answer (" Paris") rests on content tokens: on SmolLM2-135M-Instruct, occlusion and
Grad-ELLM both put ``iffel`` first, so the map can be checked by eye."""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="run Grad-ELLM on a built-in example and write an HTML report")
    add_model_args(p)
    p.add_argument("--out", default="demo_report.html", help="HTML report path")
    p.add_argument("--max-new-tokens", type=int, default=2, help="tokens to generate greedily")
    return p


def run(args: argparse.Namespace) -> int:
    from .explain import add_parser as explain_parser
    from .explain import run as explain_run

    # the explain command's own defaults (plain prompt, Grad-ELLM's default configuration), with the demo's
    # prompt, model and output
    parser = explain_parser(argparse.ArgumentParser().add_subparsers())
    ns = parser.parse_args(["--out", args.out, "--max-new-tokens", str(args.max_new_tokens)])
    ns.prompt, ns.model, ns.device, ns.dtype = DEMO_PROMPT, args.model, args.device, args.dtype
    print(f"prompt: {DEMO_PROMPT!r}")
    return explain_run(ns)
