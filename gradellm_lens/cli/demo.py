"""``gradellm-lens demo``: Grad-ELLM on the default model for a built-in prompt, printed and as HTML."""

from __future__ import annotations

import argparse

from .common import add_model_args

DEMO_PROMPT = "Classify the sentiment of this movie review as positive or negative.\nReview: a charming and often affecting journey.\nSentiment:"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="run Grad-ELLM on a built-in example and write an HTML report")
    add_model_args(p)
    p.add_argument("--out", default="demo_report.html", help="HTML report path")
    p.add_argument("--max-new-tokens", type=int, default=4)
    return p


def run(args: argparse.Namespace) -> int:
    from .explain import run as explain_run

    ns = argparse.Namespace(
        prompt=DEMO_PROMPT, model=args.model, device=args.device, dtype=args.dtype, method="grad_ellm", methods=None,
        variant=None, option=None, max_new_tokens=args.max_new_tokens, continuation=None, target=None,
        contrast=None, chat=True, out=args.out, save=None, no_color=False,
    )  # fmt: skip
    print(f"prompt: {DEMO_PROMPT!r}")
    return explain_run(ns)
