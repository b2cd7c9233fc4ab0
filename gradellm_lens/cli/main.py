"""``gradellm-lens``: one sub-command per module listed in :data:`COMMANDS`.

Each command module defines ``add_parser(subparsers)`` (returning its parser) and ``run(args) -> int``.
Every option's help shows its default.

Exit codes and error output (``--debug``, before or after the command, shows tracebacks instead):

* 0: success;
* 1: an unexpected internal error: one line naming the exception, and a hint to rerun with ``--debug``;
* 2: a usage error (argparse: one line and a pointer to ``--help``; extra words after a prompt get
  a hint to quote it) or an error the user can fix (:class:`~gradellm_lens.errors.LensError`, a file-system error):
  one line on stderr;
* 130: interrupted (Ctrl-C), also while the libraries are still being imported: one line.

Warnings are printed as one line each (``gradellm-lens CMD: warning: ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import NoReturn

from ..versions import __version__

COMMANDS = ("explain", "demo", "evaluate", "summarize", "methods", "study")
DEBUG_HELP = "show full tracebacks on errors"


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option's help that has a default and does not state it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if not action.option_strings or default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: {default})"


class CommandParser(argparse.ArgumentParser):
    """The parser of ``gradellm-lens`` and of each sub-command: :class:`HelpFormatter` unless the
    command picks another, and usage errors as one line with a pointer to ``--help`` (not the usage)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split()).rstrip('.')}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    description = "Grad-ELLM attribution, faithfulness evaluation and head/layer studies for decoder-only LLMs."
    parser = CommandParser(prog="gradellm-lens", description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}", help="print the version")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    for name in COMMANDS:
        module = importlib.import_module(f"{__package__}.{name}")
        command = module.add_parser(sub)
        # SUPPRESS: without the flag here, the value given before the command stands
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        command.set_defaults(_run=module.run, _parser=command)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; words left over after an explain prompt get a hint to quote the prompt."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        message = f"unrecognized arguments: {' '.join(extra)}"
        if getattr(args, "prompt", None) is not None and not any(w.startswith("-") for w in extra):
            words = " ".join([args.prompt, *extra])
            message += f". Is the prompt unquoted? Quote it: gradellm-lens {args.command} \"{words}\""
        args._parser.error(message)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    prefix, debug = "gradellm-lens", "--debug" in argv
    try:
        parser = build_parser()  # imports the commands (and torch): Ctrl-C here is handled below
        args = parse(parser, argv)
        prefix, debug = f"gradellm-lens {args.command}", args.debug
        with _one_line_diagnostics(prefix, enabled=not debug):
            return int(args._run(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:
        if debug:
            raise
        if isinstance(exc, KeyboardInterrupt):
            print(f"{prefix}: interrupted", file=sys.stderr)
            return 130
        from ..errors import LensError

        if isinstance(exc, (LensError, OSError)):
            print(f"{prefix}: error: {_one_line(str(exc))}", file=sys.stderr)
            return 2
        message = f"{type(exc).__name__}: {_one_line(str(exc))}"
        print(f"{prefix}: internal error: {message} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _one_line(message: str) -> str:
    """``message`` on one line, printable whatever the terminal's encoding (bad characters escaped)."""
    line = " ".join(message.split()) or "(no message)"
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    return line.encode(encoding, errors="backslashreplace").decode(encoding)


@contextlib.contextmanager
def _one_line_diagnostics(prefix: str, enabled: bool) -> Iterator[None]:
    """Print warnings as single lines and quieten the Hugging Face hub's retry logging."""
    if not enabled:
        yield
        return
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, category, *rest: print(  # noqa: ARG005
            f"{prefix}: warning: {_one_line(str(message))}", file=sys.stderr
        )
        hub_logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            hub_logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
