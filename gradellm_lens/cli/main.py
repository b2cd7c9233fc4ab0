"""``gradellm-lens``: one sub-command per module listed in :data:`COMMANDS`.

Each command module defines ``add_parser(subparsers)`` (returning its parser) and ``run(args) -> int``.

Exit codes and error output (``--debug``, given before the command, shows tracebacks instead):

* 0: success;
* 1: an unexpected internal error: one line naming the exception, and a hint to rerun with ``--debug``;
* 2: a usage error (argparse: usage + message) or an error the user can fix
  (:class:`~gradellm_lens.errors.LensError`, a file-system error): one line on stderr;
* 130: interrupted (Ctrl-C).

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

COMMANDS = ("explain", "demo", "evaluate", "summarize", "methods", "study")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradellm-lens", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__package__}.{name}")
        command = module.add_parser(sub)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ..errors import LensError

    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"gradellm-lens {args.command}"
    try:
        with _one_line_diagnostics(prefix, enabled=not args.debug):
            return int(args._run(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:
        if args.debug:
            raise
        if isinstance(exc, KeyboardInterrupt):
            print(f"{prefix}: interrupted", file=sys.stderr)
            return 130
        if isinstance(exc, (LensError, OSError)):
            print(f"{prefix}: error: {_one_line(str(exc))}", file=sys.stderr)
            return 2
        message = f"{type(exc).__name__}: {_one_line(str(exc))}"
        print(f"{prefix}: internal error: {message} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _one_line(message: str) -> str:
    return " ".join(message.split()) or "(no message)"


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
