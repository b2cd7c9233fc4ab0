"""``gradellm-lens study NAME [ARGS...]``: run a head/layer study of the checkout's ``analyses/`` folder.

The studies are scripts (``analyses/<name>.py``, each with ``main(argv) -> int``) rather than
package modules: they live in the source checkout next to their committed results. This command
imports them from the current directory or, failing that, from the checkout the package was
installed from (editable installs), and passes ``ARGS`` through: ``gradellm-lens study head_curves
--task tellmewhy`` equals ``python -m analyses.head_curves --task tellmewhy``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from ..errors import InvalidInputError, unknown_name_error

STUDIES = {
    "head_curves": "cumulative head ablation in Grad-ELLM / output-norm / random order",
    "head_agreement": "rank agreement of Grad-ELLM head importance with single-head ablation",
    "layer_sweep": "pi-Soft faithfulness vs Grad-ELLM layer selection and variant switches",
}


def add_parser(sub) -> argparse.ArgumentParser:
    listing = "; ".join(f"{name}: {text}" for name, text in STUDIES.items())
    p = sub.add_parser("study", help="run a head/layer study from analyses/ (tables + plots)", description=listing)
    p.add_argument("name", help=f"study name ({', '.join(STUDIES)})")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the study (NAME --help lists them)")
    return p


def load_study(name: str):
    """The study module ``analyses.<name>``; raises :class:`InvalidInputError` when it cannot be found."""
    if name not in STUDIES:
        raise unknown_name_error("study", name, STUDIES)
    try:
        return importlib.import_module(f"analyses.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("analyses", f"analyses.{name}"):
            raise
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "analyses" / f"{name}.py").is_file():
        raise InvalidInputError(
            f"Study {name!r} lives in the source checkout's analyses/ folder, which was not found here or at "
            f"{checkout}; run it from the repository root."
        )
    sys.path.insert(0, str(checkout))
    return importlib.import_module(f"analyses.{name}")


def run(args: argparse.Namespace) -> int:
    return int(load_study(args.name).main(args.args) or 0)
