"""``gradellm-lens explain "prompt"``: attribute a generation, print heatmaps and write one HTML report.

Prompts come from the argument, or from ``--prompts-file PATH`` (``-`` reads stdin): one prompt per
line, or JSON Lines with a ``"prompt"`` field (a file whose first non-blank line starts with ``{``), read
with the task data's JSONL reader. Every prompt is checked before the model runs; a bad one is named
by ``file:line``.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ..encoding import PROMPT_FORMATS
from .common import add_model_args, load_model_from_args, parse_options


def add_parser(sub) -> argparse.ArgumentParser:
    what = "attribute each generated token of a prompt's continuation"
    description = f"{what[0].upper()}{what[1:]}: print heatmaps and write one HTML report for all prompts."
    p = sub.add_parser("explain", help=what, description=description)
    p.add_argument("prompt", nargs="?", default=None, help="prompt text (quote it); or use --prompts-file")
    p.add_argument("--prompts-file", default=None, metavar="PATH",
                   help="read prompts from this file ('-' = stdin): one per line, or JSONL with a 'prompt' field")
    add_model_args(p)
    p.add_argument("--method", default="grad_ellm", help="attribution method (list: gradellm-lens methods)")
    p.add_argument("--methods", default=None, metavar="A,B,...",
                   help="several methods on the same continuation, side by side in the report; "
                        "NAME:VARIANT picks a Grad-ELLM variant (e.g. grad_ellm,grad_ellm:reference)")
    p.add_argument("--variant", default=None,
                   help="Grad-ELLM variant: default, reference, pattern, rope, softmax, no_spatial (default: default)")
    p.add_argument("--option", "-O", action="append", metavar="KEY=VALUE",
                   help="method option, repeatable (e.g. -O layers=4); options: gradellm-lens methods NAME")
    p.add_argument("--max-new-tokens", type=int, default=10, help="tokens to generate greedily")
    p.add_argument("--continuation", default=None, help="force this continuation instead of generating")
    p.add_argument("--target", default=None, help="explain this token / label word after the prompt (one step)")
    p.add_argument("--contrast", default=None, help="explain the target's score minus this token's")
    p.add_argument("--prompt-format", choices=PROMPT_FORMATS, default="plain",
                   help="plain: the text as given; chat: wrapped in the model's chat template")
    p.add_argument("--out", default=None, help="write one self-contained HTML report for all prompts here")
    p.add_argument("--save", default=None, help="save each result here (.npz, or .json)")
    p.add_argument("--no-color", action="store_true", help="plain-text heatmap (colour is used only on a terminal)")
    p.add_argument("--full-prompt", action="store_true",
                   help="show every prompt token (default: the user's text and the generated tokens; chat template, "
                   "system prompt and special tokens hidden, with a note)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
    return p


def read_prompts(source: str) -> list[tuple[str, str]]:
    """``(file:line, prompt)`` of a file (``"-"``: stdin): one prompt per non-blank line, or JSONL objects
    with a ``prompt`` (when the first non-blank line starts with ``{``).

    Read with the task data's reader (:func:`~gradellm_lens.tasks.data.read_lines`,
    :func:`~gradellm_lens.tasks.data.parse_jsonl`): UTF-8 with an optional byte-order mark, lines
    ending at ``"\\n"`` only (a prompt may hold U+2028, U+0085 or a form feed).

    Raises:
        InvalidInputError: no prompts, a JSONL line that is not an object with a string
            ``prompt``, or text that is not valid UTF-8 (named ``file:line``).
    """
    from ..errors import InvalidInputError
    from ..tasks.data import parse_jsonl, read_lines

    name, lines = read_lines(source, "Prompts file")
    if not lines:
        raise InvalidInputError(f"{name} holds no prompts (every line is blank).")
    if not lines[0][1].lstrip().startswith("{"):
        return [(f"{name}:{i}", line) for i, line in lines]
    prompts = []
    for i, record in parse_jsonl(name, lines):
        where = f"{name}:{i}"
        if not isinstance(record.get("prompt"), str):
            raise InvalidInputError(f'{where}: expected an object with a string "prompt" field.')
        prompts.append((where, record["prompt"]))
    return prompts


def _prompts(args: argparse.Namespace) -> list[tuple[str | None, str]]:
    """``(file:line or None, prompt)`` of the argument or of ``--prompts-file``."""
    from ..errors import InvalidInputError

    if (args.prompt is None) == (args.prompts_file is None):
        raise InvalidInputError("Give one prompt (quoted) or --prompts-file PATH, not both and not neither.")
    return [(None, args.prompt)] if args.prompts_file is None else read_prompts(args.prompts_file)


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
    from ..errors import InvalidInputError
    from ..viz import render
    from ..viz.report import write_report

    if args.save and Path(args.save).is_dir():
        raise InvalidInputError(f"--save {args.save} is a folder; give a file name (.npz or .json).")
    named = _prompts(args)
    prompts = [text for _where, text in named]
    specs = _method_specs(args)
    model = load_model_from_args(args)
    common = dict(
        target=args.target, contrast=args.contrast, prompt_format=args.prompt_format,
        progress=False if args.no_progress else None, max_new_tokens=args.max_new_tokens,
    )  # fmt: skip
    batch = prompts if len(prompts) > 1 else prompts[0]
    per_method = []  # per method: one result per prompt
    for method, options in specs:
        # later methods explain exactly the continuations the first one generated
        continuations = [args.continuation] * len(prompts)
        if per_method and args.target is None:
            continuations = [r.token_ids[r.prompt_length :].tolist() for r in per_method[0]]
        if per_method or args.continuation is not None:
            results = []
            for i, (p, c) in enumerate(zip(prompts, continuations)):
                with _naming_line(named, i):
                    results.append(explain(model, p, method, continuation=c, **common, **options))
        else:
            with _naming_line(named, 0):
                out = explain(model, batch, method, **common, **options)
            results = out if isinstance(out, list) else [out]
        per_method.append(results)
    color = False if args.no_color else None
    ordered = [per_method[m][i] for i in range(len(prompts)) for m in range(len(specs))]
    for result in ordered:
        shown, note = result.displayed(args.full_prompt)
        cli_note = "" if note is None else "\n" + note.replace("full_prompt=True", "--full-prompt")
        print(render(shown, color=color) + cli_note)
    if args.save:
        for i, result in enumerate(ordered):
            prompt_index = i // len(specs) if len(prompts) > 1 else None
            path = args.save if len(ordered) == 1 else _suffixed(args.save, result, prompt_index)
            print(f"saved {result.save(path)}")
    if args.out:
        title = prompts[0] if len(prompts) == 1 else f"{len(prompts)} prompts from {args.prompts_file}"
        print(f"wrote {write_report(ordered, args.out, title=title, full_prompt=args.full_prompt)}")
    return 0


@contextlib.contextmanager
def _naming_line(named: list[tuple[str | None, str]], index: int):
    """Prefix an error about prompt ``index`` (or, in a batch, about the prompt it names) with its ``file:line``."""
    from ..errors import LensError

    try:
        yield
    except LensError as exc:
        batch_index = getattr(exc, "prompt_index", None)  # set by explain on a batch: "Prompt i of n: ..."
        where = named[index if batch_index is None else batch_index][0]
        if where is None:
            raise
        reason = exc if batch_index is None else exc.__cause__
        raise type(exc)(f"{where}: {reason}") from exc


def _suffixed(path: str, result, prompt_index: int | None) -> str:
    """``out.npz`` -> ``out.grad_ellm-reference.npz`` (one file per method), ``out.2.grad_ellm.npz`` per prompt."""
    p = Path(path)
    tag = result.method + (f"-{result.variant}" if result.variant and result.variant != "default" else "")
    index = "" if prompt_index is None else f"{prompt_index + 1}."
    return str(p.with_name(f"{p.stem}.{index}{tag}{p.suffix or '.npz'}"))
