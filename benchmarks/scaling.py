"""How time and memory grow with model size, prompt length ``L`` and generated steps ``T``.

Usage::

    python benchmarks/scaling.py                    # tiny + SmolLM2 (+ Gemma-3-270M if installed), L = 32/128/256, T = 1/10
    python benchmarks/scaling.py --quick            # tiny model only, L = 32/64, T = 1/4: a smoke run
    python benchmarks/scaling.py --models smollm2-135m-instruct --lengths 512 1024 --device cuda

Rows, for every model, ``L`` and ``T`` (the inputs of :mod:`benchmarks.inputs`: a prompt of ``L``
tokens and a forced ``T``-token continuation; the tiny model's 128-token context shortens ``L``):

``grad_ellm``
    Default Grad-ELLM (last layer) on all ``T`` steps: one no-grad forward of the ``L + T - 1``
    tokens and one batch of ``T`` single-position rows with one backward (where the model supports
    it; else one forward with gradients and one batched backward to the last layer's ``hook_z``).
``grad_ellm[layers=all]``
    The same with every layer.
``pi_soft`` (``T = 1``)
    Soft-NS/NC and π-Soft-NS/NC of one step with the default :class:`FaithfulnessConfig`, the
    step's clean and all-masked forwards computed once outside the timed region (as an evaluation
    shares them between methods): 5 draws x (2 plain + 2 x 9 π) = 100 perturbed no-grad forwards
    of the prefix, in batches of 64. An evaluated example with ``T`` steps runs this once per step.

Each model is loaded once, in its own Python process; its rows run in turn (steps, then lengths
ascending). Per row (:mod:`benchmarks.measure`): a first run that measures the peak memory, then
up to ``--repeats`` timed runs (median; wall and process CPU time); a call longer than half of
``--budget-s`` is timed on its first run only. Columns:

* ``rss_mb``: resident memory of the process before the row (weights, runtime, bridge);
* ``peak_mb``: how much more memory the first run needed at its peak (CPU: peak RSS above the live
  memory before it; CUDA: ``max_memory_allocated`` above the allocated memory);
* ``wall_ms`` / ``cpu_ms``: median time of one call.

On a shared CPU, wall time absorbs other processes' load (the load average is recorded per row);
CPU time and memory are steadier. The table is printed, and every row is appended to
``benchmarks/results/scaling.csv`` as soon as it is measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `gradellm_lens` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"
CASES = ("grad_ellm", "grad_ellm[layers=all]", "pi_soft")
DEFAULT_MODELS = ("tiny-llama", "smollm2-135m-instruct", "gemma-3-270m")
QUICK = {"models": ["tiny-llama"], "lengths": [32, 64], "steps": [1, 4], "repeats": 2}


@dataclass
class Row:
    """One measured call (one CSV line)."""

    model: str
    case: str
    prompt_len: int
    steps: int
    n_params_m: float
    n_layers: int
    d_model: int
    device: str
    threads: int
    wall_ms: float
    cpu_ms: float
    repeats: int
    rss_mb: float
    peak_mb: float | None
    load_avg: float
    note: str = ""


# ---- the measurements of one model (child process) -------------------------------------------------
def build_call(model, case: str, prompt_len: int, steps: int):
    """The timed callable of ``case`` and the prompt length actually used."""
    from benchmarks.cases import method_call, pi_soft_call
    from benchmarks.inputs import make_input

    inp = make_input(model, prompt_len, steps)
    if case == "pi_soft":
        step = inp.last_step
        return pi_soft_call(model, inp.tokens[: step.position + 1], step, before=False), inp.prompt_length
    options = {"layers": "all"} if case == "grad_ellm[layers=all]" else {}
    return method_call(model, "grad_ellm", inp, **options), inp.prompt_length


def measure_model(spec: dict) -> Iterator[Row]:
    """Load ``spec["model"]`` once and measure each of its ``spec["rows"]`` ``(case, L, T)`` in turn."""
    import psutil
    import torch

    import gradellm_lens as gl
    from benchmarks import measure
    from gradellm_lens.models import model_info

    torch.set_num_threads(spec["threads"])
    device = spec["device"]
    model = gl.load_model(spec["model"], device=device)
    info = model_info(model)
    n_params = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    budget = measure.Budget(spec["repeats"], spec["budget_s"], math.inf, math.inf)
    done: set[tuple[str, int, int]] = set()
    for case, requested, steps in spec["rows"]:
        call, length = build_call(model, case, requested, steps)
        if (case, length, steps) in done:  # the prompt was shortened to the context already
            continue
        done.add((case, length, steps))
        rss = psutil.Process().memory_info().rss / 2**20
        warm, peak = measure.first_run(call, device)
        long_call = 2 * warm.wall_s > spec["budget_s"]
        n = 1 if long_call else budget.plan_repeats(warm.wall_s)
        sample = warm if long_call else measure.median([measure.timed(call, device) for _ in range(n)])
        yield Row(
            model=spec["model"], case=case, prompt_len=length, steps=steps, n_params_m=n_params,
            n_layers=info.n_layers, d_model=info.d_model, device=device, threads=spec["threads"],
            wall_ms=round(1e3 * sample.wall_s, 1), cpu_ms=round(1e3 * sample.cpu_s, 1), repeats=n,
            rss_mb=round(rss, 1), peak_mb=None if peak is None else round(peak / 2**20, 1),
            load_avg=round(os.getloadavg()[0], 2), note="first run timed (long call)" if long_call else "",
        )  # fmt: skip


# ---- the sweep (parent process) ---------------------------------------------------------------------
def available(model: str) -> bool:
    """Whether ``model`` can be loaded here without the network (its model package is installed)."""
    import importlib.util

    from gradellm_lens.models.catalog import GGUF_MODELS

    entry = GGUF_MODELS.get(model)
    return entry is None or importlib.util.find_spec(entry.package) is not None


def plan(lengths: list[int], steps: list[int]) -> list[tuple[str, int, int]]:
    """``(case, L, T)`` of every row of one model, steps then lengths ascending; ``pi_soft`` only at ``T = 1``."""
    return [
        (case, length, n_steps)
        for n_steps in sorted(steps)
        for case in CASES
        if case != "pi_soft" or n_steps == 1
        for length in sorted(lengths)
    ]


def run_model(spec: dict) -> Iterator[Row]:
    """The rows of one model, measured in a fresh interpreter (``--child``), as they come."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        for line in proc.stdout:
            if line.startswith("{"):
                yield Row(**json.loads(line))
        error = proc.stderr.read()
    if proc.returncode != 0:
        tail = (error or "no output").strip().splitlines()[-1]
        print(f"{spec['model']}: measuring stopped: {tail}", file=sys.stderr)


def format_table(rows: list[Row]) -> str:
    """Aligned text table, one line per row."""
    header = ["model", "case", "L", "T", "wall ms", "cpu ms", "rss MB", "peak MB", "load"]
    body = [
        [r.model, r.case, str(r.prompt_len), str(r.steps), f"{r.wall_ms:.0f}", f"{r.cpu_ms:.0f}", f"{r.rss_mb:.0f}",
         "" if r.peak_mb is None else f"{r.peak_mb:.0f}", f"{r.load_avg:.1f}"]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))

    return "\n".join([fmt(header), *map(fmt, body)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="tiny model, L=32/64, T=1/4, 2 repeats")
    p.add_argument("--models", nargs="+", help=f"default: {' '.join(DEFAULT_MODELS)} (those installed)")
    p.add_argument("--lengths", nargs="+", type=int, help="prompt lengths L (default 32 128 256)")
    p.add_argument("--steps", nargs="+", type=int, help="generated steps T (default 1 10)")
    p.add_argument("--repeats", type=int, help="timed repeats after the first run (default 5)")
    p.add_argument("--budget-s", type=float, default=20.0, help="time budget of a row's timed repeats")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a loaded machine OpenMP's spin-waiting inflates CPU time)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="CSV path (default benchmarks/results/scaling.csv)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    """Command-line entry point; returns the rows."""
    args = parse_args(argv)
    if args.child:
        for row in measure_model(json.loads(args.child)):
            print(json.dumps(asdict(row)), flush=True)
        return []
    quick = QUICK if args.quick else {}
    models = args.models or quick.get("models") or [m for m in DEFAULT_MODELS if available(m)]
    todo = plan(args.lengths or quick.get("lengths") or [32, 128, 256], args.steps or quick.get("steps") or [1, 10])
    base = {"device": args.device, "threads": args.threads, "repeats": args.repeats or quick.get("repeats") or 5,
            "budget_s": args.budget_s, "rows": todo}  # fmt: skip
    out = args.out or RESULTS / f"scaling{'-quick' if args.quick else ''}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(Row)])
        writer.writeheader()
        for model in models:
            print(f"== {model}: {len(todo)} rows", file=sys.stderr, flush=True)
            for row in run_model({**base, "model": model}):
                rows.append(row)
                writer.writerow(asdict(row))
                fh.flush()
                print(format_table([row]).splitlines()[1], file=sys.stderr, flush=True)
    print(format_table(rows))
    print(f"\nwrote {out}")
    return rows


if __name__ == "__main__":
    main()
