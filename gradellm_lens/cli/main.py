"""``gradellm-lens``: one sub-command per module listed in :data:`COMMANDS`.

Each command module defines ``add_parser(subparsers)`` (returning its parser) and ``run(args) -> int``.
Errors the user can fix (:class:`~gradellm_lens.errors.LensError`) print one line and exit 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("explain", "demo")


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
    try:
        return int(args._run(args) or 0)
    except (LensError, FileNotFoundError, KeyboardInterrupt) as exc:
        if args.debug:
            raise
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        print(f"gradellm-lens {args.command}: error: {message}", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 2


if __name__ == "__main__":
    sys.exit(main())
