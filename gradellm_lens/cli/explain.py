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
    p.add_argument("--methods", default=None, metavar="A,B,...",
                   help="several methods on the same continuation, side by side in the report; "
                        "NAME:VARIANT picks a Grad-ELLM variant (e.g. grad_ellm,grad_ellm:reference)")
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


def _method_specs(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """``[(method, options), ...]`` from ``--method``/``--methods``, ``--variant`` and ``-O`` options.

    ``--methods`` takes the evaluation's ``name[:variant][+key=value]`` specs. ``-O`` / ``--variant``
    options go to the methods that have them (others are told so); an option that none of the
    methods has is an error (a typo).
    """
    from ..errors import InvalidInputError, did_you_mean
    from ..evaluation.specs import parse_method_specs
    from ..methods import get_method

    options = parse_options(args.option)
    if args.variant is not None:
        options["variant"] = args.variant
    if not getattr(args, "methods", None):
        return [(args.method, options)]
    specs = parse_method_specs(args.methods)
    accepted = {}
    for spec in specs:
        accepted[spec.label] = get_method(spec.name).option_names()
    known = set().union(*accepted.values())
    if unused := sorted(set(options) - known):
        raise InvalidInputError(
            f"None of the methods {', '.join(accepted)} has an option {unused[0]!r}.{did_you_mean(unused[0], known)}"
        )
    out = []
    for spec in specs:
        mine = {k: v for k, v in options.items() if k in accepted[spec.label]}
        if dropped := sorted(set(options) - set(mine)):
            print(f"note: {spec.name} has no option(s) {', '.join(dropped)}; not applied to it")
        out.append((spec.name, {**mine, **spec.options}))
    return out


def run(args: argparse.Namespace) -> int:
    from ..attribute import explain
    from ..viz import render
    from ..viz.report import write_report

    specs = _method_specs(args)
    model = load_model_from_args(args)
    common = dict(target=args.target, contrast=args.contrast, chat_template=args.chat)
    results = []
    for method, options in specs:
        # later methods explain exactly the continuation the first one generated
        continuation = args.continuation
        if results and args.target is None:
            continuation = results[0].token_ids[results[0].prompt_length :].tolist()
        result = explain(
            model, args.prompt, method, max_new_tokens=args.max_new_tokens, continuation=continuation,
            **common, **options,
        )  # fmt: skip
        print(render(result, color=not args.no_color and sys.stdout.isatty()))
        results.append(result)
    if args.save:
        for result in results:
            path = args.save if len(results) == 1 else _suffixed(args.save, result)
            print(f"saved {result.save(path)}")
    if args.out:
        print(f"wrote {write_report(results, args.out, title=args.prompt)}")
    return 0


def _suffixed(path: str, result) -> str:
    """``out.npz`` -> ``out.grad_ellm-reference.npz`` (one file per method)."""
    from pathlib import Path

    p = Path(path)
    tag = result.method + (f"-{result.variant}" if result.variant and result.variant != "default" else "")
    return str(p.with_name(f"{p.stem}.{tag}{p.suffix or '.npz'}"))
