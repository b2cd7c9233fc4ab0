"""``gradellm-lens evaluate`` throughput: example-method pairs per minute, before/after and per core layout.

Each configuration runs the real command in fresh processes (``python -m gradellm_lens.cli
evaluate ... --overwrite``) and reads the pairs written and the seconds spent from its summary line
(``N new result(s) ... in S s``: the evaluation itself, without loading the model). Layouts:

``1x<c>``
    one process with ``c`` torch threads (``OMP_NUM_THREADS=c``);
``<s>x1``
    ``s`` shards (``--shard-index i --num-shards s``) as concurrent processes with one thread each;
    throughput = all pairs / the slowest shard's time.

``source`` is the package checkout to run: this one (``after``) or, with ``--before-rev REV``, the
tree of that git revision exported to a temporary folder (``git archive``), so before and after
run the same command on the same machine in one benchmark run.

Standalone (``benchmarks/run.py --evaluate`` runs the same after its latency table)::

    python benchmarks/throughput.py --models smollm2-135m-instruct --before-rev dd1d07f \
        --layouts 1x1 1x2 2x1 --out benchmarks/results/cpu-throughput.md The evaluation protocol gained
work since (every method's shuffled and rank controls, ``random`` as the mean of 10 maps), so
with a "before" revision this checkout runs twice: ``after (same work)`` with ``SAME_WORK_ARGS``
(no controls, one random map: the computation the older code does) and ``after (protocol)`` with
the defaults.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"(\d+) new result\(s\).* in ([\d.]+) s")
DEFAULT_METHODS = "grad_ellm,saliency,random"
SAME_WORK_ARGS = ("--controls", "none", "--random-maps", "1")
"""Options that make today's ``evaluate`` do the work an older revision did (no controls, one random map)."""


@dataclass
class Throughput:
    """One measured configuration."""

    model: str
    source: str
    layout: str
    pairs: int
    seconds: float
    wall_s: float
    note: str = ""

    @property
    def pairs_per_min(self) -> float:
        return 60.0 * self.pairs / self.seconds if self.seconds else float("nan")


def export_revision(rev: str, into: Path) -> Path:
    """The tree of git revision ``rev`` of this checkout, written under ``into`` (returns its root)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _command(args: Sequence[str], source: Path, threads: int) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    return [sys.executable, "-m", "gradellm_lens.cli", "evaluate", *args], env


def run_layout(
    model: str, source: Path, label: str, shards: int, threads: int, base_args: Sequence[str], out_dir: Path
) -> Throughput:
    """Run ``shards`` concurrent processes of ``threads`` threads each; see the module docstring."""
    procs = []
    start = time.perf_counter()
    for index in range(shards):
        shard = ["--shard-index", str(index), "--num-shards", str(shards)] if shards > 1 else []
        argv, env = _command([*base_args, "--out-dir", str(out_dir), *shard], source, threads)
        procs.append(subprocess.Popen(argv, env=env, cwd=str(source), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate() for p in procs]
    wall = time.perf_counter() - start
    layout = f"{shards}x{threads}"
    pairs, seconds, notes = 0, 0.0, []
    for proc, (out, err) in zip(procs, outputs):
        found = SUMMARY.search(out)
        if proc.returncode != 0 or found is None:
            notes.append(f"exit {proc.returncode}: {(err or out).strip().splitlines()[-1:] or ['no output']}")
            continue
        pairs += int(found.group(1))
        seconds = max(seconds, float(found.group(2)))
    return Throughput(model, label, layout, pairs, seconds, wall, "; ".join(notes))


def measure(
    model: str,
    *,
    before_rev: str | None,
    n_examples: int,
    methods: str,
    task: str,
    layouts: Sequence[tuple[int, int]],
    extra_args: Sequence[str] = (),
    protocol_rows: bool = True,
) -> list[Throughput]:
    """Every (source, layout) of one model; ``layouts`` are ``(processes, threads)`` pairs.

    With ``before_rev``, ``protocol_rows=False`` leaves out the ``after (protocol)`` rows (the
    slowest: 16 π-Soft evaluations per example instead of 3 with the default methods).
    """
    from gradellm_lens.tasks.data import default_data_dir

    base = [
        "--task", task, "--model", model, "--methods", methods, "--n", str(n_examples), "--overwrite",
        "--no-progress", "--data-dir", str(default_data_dir()), "--device", "cpu", *extra_args,
    ]  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="gradellm-throughput-") as tmp:
        sources = [("after", ROOT, ())]
        if before_rev:
            sources = [
                (f"before ({before_rev})", export_revision(before_rev, Path(tmp) / "before"), ()),
                ("after (same work)", ROOT, SAME_WORK_ARGS),
                *([("after (protocol)", ROOT, ())] if protocol_rows else []),
            ]
        for label, source, args in sources:
            for shards, threads in layouts:
                out_dir = Path(tmp) / f"run-{len(rows)}"
                rows.append(run_layout(model, source, label, shards, threads, [*base, *args], out_dir))
                print(format_rows(rows[-1:], header=False), file=sys.stderr, flush=True)
    return rows


def format_rows(rows: Sequence[Throughput], header: bool = True, markdown: bool = False) -> str:
    """The rows as an aligned text table or Markdown."""
    head = ["model", "code", "processes x threads", "pairs", "evaluation s", "pairs/min", "note"]
    body = [
        [r.model, r.source, r.layout, str(r.pairs), f"{r.seconds:.1f}", f"{r.pairs_per_min:.1f}", r.note] for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] if header else []
        return "\n".join(lines + ["| " + " | ".join(line) + " |" for line in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = [head] if header else []
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines + body)


def parse_layout(text: str) -> tuple[int, int]:
    """``"2x1"`` -> ``(2, 1)``: processes x threads."""
    try:
        processes, threads = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--layouts: expected PROCESSESxTHREADS such as 2x1, got {text!r}") from None
    return processes, threads


def main(argv: Sequence[str] | None = None) -> list[Throughput]:
    """Measure every model (see the module docstring); print the table and write it as Markdown."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["smollm2-135m-instruct"], help="built-in model names")
    p.add_argument("--before-rev", help="git revision whose code gives the 'before' rows")
    p.add_argument("--n", type=int, default=2, help="SST-2 examples per run (default 2)")
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"method specs (default {DEFAULT_METHODS})")
    p.add_argument("--layouts", nargs="+", default=["1x2", "2x1"], help="PROCESSESxTHREADS (default 1x2 2x1)")
    p.add_argument("--same-work-only", action="store_true", help="with --before-rev: no 'after (protocol)' rows")
    p.add_argument("--out", type=Path, help="Markdown file to write")
    args = p.parse_args(argv)
    layouts = [parse_layout(x) for x in args.layouts]
    rows = []
    for model in args.models:
        rows += measure(
            model, before_rev=args.before_rev, n_examples=args.n, methods=args.methods, task="sst2",
            layouts=layouts, extra_args=["--perturb", "user_text"], protocol_rows=not args.same_work_only,
        )  # fmt: skip
    print(format_rows(rows))
    if args.out:
        meta = (
            f"`gradellm-lens evaluate --task sst2 --perturb user_text --methods {args.methods} --n {args.n}`, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}"
        )
        args.out.write_text("\n".join([meta, "", format_rows(rows, markdown=True), ""]))
        print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
