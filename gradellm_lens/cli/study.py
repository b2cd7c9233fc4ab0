"""``gradellm-lens study NAME [ARGS...]``: run a head/layer study (:mod:`gradellm_lens.cli.studies`).

``ARGS`` go to the study: ``gradellm-lens study head_curves --task tellmewhy`` (``NAME --help``
lists them). The studies ship in the package, so this works from an installed wheel; by default
they write to ``runs/studies/NAME/`` under the working directory (``--out`` names another folder).
"""

from __future__ import annotations

import argparse
import importlib

from ..errors import unknown_name_error
from .studies import STUDIES


def add_parser(sub) -> argparse.ArgumentParser:
    listing = "; ".join(f"{name}: {text}" for name, text in STUDIES.items())
    p = sub.add_parser("study", help="run a head/layer study (tables + plots)", description=listing)
    p.add_argument("name", help=f"study name ({', '.join(STUDIES)})")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the study (NAME --help lists them)")
    return p


def load_study(name: str):
    """The study module ``gradellm_lens.cli.studies.<name>``; unknown names get a "Did you mean"."""
    if name not in STUDIES:
        raise unknown_name_error("study", name, STUDIES)
    return importlib.import_module(f"{__package__}.studies.{name}")


def run(args: argparse.Namespace) -> int:
    return int(load_study(args.name).main(args.args) or 0)
