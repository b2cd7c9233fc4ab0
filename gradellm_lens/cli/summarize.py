"""``gradellm-lens summarize RESULTS...``: merge results files (e.g. shards) into a summary table and plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InvalidInputError
from ..optional import require
from .common import DefaultsHelpFormatter


def add_summary_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``evaluate`` and ``summarize``."""
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples for the 95%% CI")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="evaluate: append to a results file written with other options or another gradellm-lens "
                             "version; summarize: keep each configuration's rows apart instead of refusing")  # fmt: skip


def check_summary_args(args: argparse.Namespace) -> None:
    """Refuse bad summary options, and a missing matplotlib, up front (``evaluate`` would otherwise fail only
    after its run)."""
    if args.bootstrap < 1:
        raise InvalidInputError(f"--bootstrap must be at least 1, got {args.bootstrap}.")
    require("matplotlib", "evaluation", "The summary's figure (summary_pi_curves.png)")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "summarize",
        help="summarise evaluation results files (merging shards)",
        description="Summarise evaluation results files (the shards of one run are merged). Every line is "
        "checked first; a damaged one is named by file and line.",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("results", nargs="+", help="results .jsonl files, or run folders holding results*.jsonl")
    p.add_argument(
        "--out-dir", default=None, help="where summary.csv/.md/_pi_curves.png go (default: the first file's folder)"
    )
    p.add_argument("--stem", default="summary", help="file name stem of the outputs")
    add_summary_args(p)
    return p


def expand_results(paths: list[str]) -> list[Path]:
    """Files as given; a folder stands for the ``results*.jsonl`` files inside it."""
    from ..evaluation.store import RESULTS_GLOB, results_files
    from ..tasks.data import check_readable_file

    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = results_files(path)
            if not found:
                raise InvalidInputError(f"No {RESULTS_GLOB} files in folder {path}.")
            out.extend(found)
        else:
            check_readable_file(path, "Results file")
            out.append(path)
    return out


def write_and_print(paths: list[Path], out_dir: Path, args: argparse.Namespace, stem: str = "summary") -> None:
    """Summarise ``paths``, print the table and write CSV / Markdown / PNG into ``out_dir``."""
    from ..evaluation import summarize, write_summary

    summary = summarize(paths, n_boot=args.bootstrap, allow_mixed=args.allow_mixed)
    print(summary.to_report())
    if summary.duplicates:
        print(f"note: {summary.duplicates} duplicate (example, method) line(s) were counted once")
    for written in write_summary(summary, out_dir, stem):
        print(f"wrote {written}")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.summary import check_stem

    check_summary_args(args)
    check_stem(args.stem)
    paths = expand_results(args.results)
    write_and_print(paths, Path(args.out_dir) if args.out_dir else paths[0].parent, args, args.stem)
    return 0
