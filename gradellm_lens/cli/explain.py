"""``gradellm-lens explain "prompt"``: attribute a generation and write an HTML report."""

from __future__ import annotations

import argparse
import sys

from .common import add_model_args, load_model_from_args, parse_options


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("explain", help="attribute each generated token of a prompt's continuation")
    p.add_argument("prompt", help="prompt text")
    add_model_args(p)
    p.add_argument("--method", default="grad_ellm", help="attribution method (see `gradellm-lens methods`)")
    p.add_argument("--variant", default=None, help="Grad-ELLM variant: default, reference, pattern, rope, softmax, no_spatial")
    p.add_argument("--option", "-O", action="append", metavar="KEY=VALUE", help="method option, repeatable (e.g. -O layers=4)")
    p.add_argument("--max-new-tokens", type=int, default=10)
    p.add_argument("--continuation", default=None, help="force this continuation instead of generating")
    p.add_argument("--target", default=None, help="explain this token / label word after the prompt")
    p.add_argument("--contrast", default=None, help="explain target minus this token")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    p.add_argument("--out", default=None, help="write a self-contained HTML report here")
    p.add_argument("--save", default=None, help="save the result (.npz) here")
    p.add_argument("--no-color", action="store_true", help="plain-text heatmap")
    return p


def run(args: argparse.Namespace) -> int:
    from ..attribute import explain
    from ..viz import render
    from ..viz.report import write_report

    options = parse_options(args.option)
    if args.variant is not None:
        options["variant"] = args.variant
    model = load_model_from_args(args)
    result = explain(
        model, args.prompt, args.method, max_new_tokens=args.max_new_tokens, continuation=args.continuation,
        target=args.target, contrast=args.contrast, chat_template=args.chat, **options,
    )  # fmt: skip
    print(render(result, color=not args.no_color and sys.stdout.isatty()))
    if args.save:
        print(f"saved {result.save(args.save)}")
    if args.out:
        print(f"wrote {write_report(result, args.out, title=args.prompt)}")
    return 0
