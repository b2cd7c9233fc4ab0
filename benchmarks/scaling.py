"""How time and memory grow with model size, prompt length ``L`` and generated steps ``T``.

Usage::

    python benchmarks/scaling.py                    # tiny + SmolLM2 (+ Gemma-3-270M if installed), L = 32/128/256, T = 1/10
    python benchmarks/scaling.py --quick            # tiny model only, L = 32/64: a smoke run
    python benchmarks/scaling.py --models smollm2-135m-instruct --lengths 512 1024 --device cuda

Rows, for every model, ``L`` and ``T`` (the inputs of :mod:`benchmarks.inputs`: a prompt of ``L``
tokens and a forced ``T``-token continuation; the tiny model's 128-token context shortens ``L``):

``grad_ellm``
    Default Grad-ELLM (last layer) on all ``T`` steps: one forward of the ``L + T - 1`` tokens
    with gradients, one batched backward of the ``T`` target logits to the last layer's ``hook_z``.
``grad_ellm[layers=all]``
    The same with every layer: the backward runs through the whole network.
``pi_soft`` (``T = 1``)
    Soft-NS/NC and π-Soft-NS/NC of one step with the default :class:`FaithfulnessConfig`:
    2 references + 5 draws x (2 plain + 2 x 9 π) = 102 perturbed no-grad forwards of the prefix,
    in batches of 64. An evaluated example with ``T`` steps runs this once per step.

Every row runs in a fresh Python process (so its memory peak is its own): load the model, build
the call, then one warm-up call and up to ``--repeats`` timed calls (median; wall and process CPU
time, :func:`benchmarks.measure.timed`); a call longer than half of ``--budget-s`` is timed once,
on its first run. Memory, three numbers:

* ``rss_mb``: resident memory before the call (weights, the runtime, the bridge);
* ``extra_rss_mb``: the peak resident memory during the calls minus ``rss_mb`` (Linux ``VmHWM``,
  reset through ``/proc/self/clear_refs`` just before the warm-up);
* ``tensor_mb``: peak live tensor memory of one call (:func:`benchmarks.measure.peak_memory_bytes`:
  the profiler's allocation events on CPU, ``max_memory_allocated`` on CUDA), in a separate run,
  skipped for calls longer than ``--max-profile-s`` (the profiler slows them down further).

On a shared CPU, wall time absorbs other processes' load (the load average is recorded per row);
CPU time and memory are steadier. The table is printed and written to
``benchmarks/results/scaling.csv``.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import subprocess
import sys
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
    extra_rss_mb: float | None
    tensor_mb: float | None
    load_avg: float
    note: str = ""


# ---- one measurement (child process) ----------------------------------------------------------------
def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (``VmHWM``) of this process; False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def build_call(model, case: str, prompt_len: int, steps: int):
    """The timed callable of ``case`` and the prompt length actually used."""
    from benchmarks.cases import method_call, pi_soft_call
    from benchmarks.inputs import make_input

    inp = make_input(model, prompt_len, steps)
    if case == "pi_soft":
        return pi_soft_call(model, inp), inp.prompt_length
    options = {"layers": "all"} if case == "grad_ellm[layers=all]" else {}
    return method_call(model, "grad_ellm", inp, **options), inp.prompt_length


def measure_row(spec: dict) -> Row:
    """Load the model and measure one (case, L, T) in this process (see the module docstring)."""
    import torch

    import gradellm_lens as gl
    from benchmarks import measure
    from gradellm_lens.models import model_info

    torch.set_num_threads(spec["threads"])
    model = gl.load_model(spec["model"], device=spec["device"])
    info = model_info(model)
    call, length = build_call(model, spec["case"], spec["prompt_len"], spec["steps"])
    gc.collect()
    rss = _proc_status_kb("VmRSS") / 1024
    tracked = _reset_peak_rss()
    warm = measure.timed(call, spec["device"])
    long_call = 2 * warm.wall_s > spec["budget_s"]
    n = 0 if long_call else measure.plan_repeats(warm.wall_s, spec["repeats"], spec["budget_s"])
    sample = warm if long_call else measure.median([measure.timed(call, spec["device"]) for _ in range(n)])
    extra = _proc_status_kb("VmHWM") / 1024 - rss if tracked else None
    profile = spec["memory"] and warm.wall_s <= spec["max_profile_s"]
    tensor = measure.peak_memory_bytes(call, spec["device"]) / 2**20 if profile else None
    notes = ["first call timed (longer than half the budget)"] if long_call else []
    notes += [] if profile or not spec["memory"] else [f"no tensor profile (call > {spec['max_profile_s']:g} s)"]
    return Row(
        model=spec["model"], case=spec["case"], prompt_len=length, steps=spec["steps"],
        n_params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2), n_layers=info.n_layers,
        d_model=info.d_model, device=spec["device"], threads=spec["threads"], wall_ms=round(1e3 * sample.wall_s, 1),
        cpu_ms=round(1e3 * sample.cpu_s, 1), repeats=max(n, 1), rss_mb=round(rss, 1),
        extra_rss_mb=None if extra is None else round(extra, 1), tensor_mb=None if tensor is None else round(tensor, 1),
        load_avg=round(os.getloadavg()[0], 2), note="; ".join(notes),
    )  # fmt: skip


# ---- the sweep (parent process) ---------------------------------------------------------------------
def available(model: str) -> bool:
    """Whether ``model`` can be loaded here without the network (its model package is installed)."""
    import importlib.util

    from gradellm_lens.models.catalog import GGUF_MODELS

    entry = GGUF_MODELS.get(model)
    return entry is None or importlib.util.find_spec(entry.package) is not None


def plan(models: list[str], lengths: list[int], steps: list[int]) -> list[tuple[str, str, int, int]]:
    """(model, case, L, T) of every row; ``pi_soft`` only at ``T = 1``."""
    return [
        (model, case, length, n_steps)
        for model in models
        for n_steps in steps
        for case in CASES
        if case != "pi_soft" or n_steps == 1
        for length in lengths
    ]


def run_child(spec: dict) -> Row:
    """Measure one row in a fresh interpreter (``--child``)."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(spec["threads"])},
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or "no output").strip().splitlines()[-1]
        raise RuntimeError(f"measuring {spec} failed: {tail}")
    return Row(**json.loads(lines[-1]))


def format_table(rows: list[Row]) -> str:
    """Aligned text table, one line per row."""
    header = ["model", "case", "L", "T", "wall ms", "cpu ms", "rss MB", "+rss MB", "tensor MB", "load"]
    body = [
        [r.model, r.case, str(r.prompt_len), str(r.steps), f"{r.wall_ms:.0f}", f"{r.cpu_ms:.0f}", f"{r.rss_mb:.0f}",
         "" if r.extra_rss_mb is None else f"{r.extra_rss_mb:.0f}", "" if r.tensor_mb is None else f"{r.tensor_mb:.0f}",
         f"{r.load_avg:.1f}"]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    fmt = lambda line: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))  # noqa: E731
    return "\n".join([fmt(header), *map(fmt, body)])


def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(Row)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model, L=32/64, T=1/4, 2 repeats")
    p.add_argument("--models", nargs="+", help=f"default: {' '.join(DEFAULT_MODELS)} (those installed)")
    p.add_argument("--lengths", nargs="+", type=int, help="prompt lengths L (default 32 128 256)")
    p.add_argument("--steps", nargs="+", type=int, help="generated steps T (default 1 10)")
    p.add_argument("--repeats", type=int, help="timed repeats after one warm-up (default 3)")
    p.add_argument("--budget-s", type=float, default=20.0, help="time budget of a row's timed repeats")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per measurement (default 2)")
    p.add_argument("--no-memory", action="store_true", help="skip the profiled tensor-memory run")
    p.add_argument("--max-profile-s", type=float, default=15.0, help="no tensor profile for calls longer than this")
    p.add_argument("--out", type=Path, default=None, help="CSV path (default benchmarks/results/scaling.csv)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    """Command-line entry point; returns the rows."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(asdict(measure_row(json.loads(args.child)))))
        return []
    quick = QUICK if args.quick else {}
    models = args.models or quick.get("models") or [m for m in DEFAULT_MODELS if available(m)]
    base = {
        "device": args.device, "threads": args.threads, "repeats": args.repeats or quick.get("repeats") or 3,
        "budget_s": args.budget_s, "memory": not args.no_memory, "max_profile_s": args.max_profile_s,
    }  # fmt: skip
    rows, capped = [], set()  # (model, case, T) whose prompt was already shortened to the context
    todo = plan(models, sorted(args.lengths or quick.get("lengths") or [32, 128, 256]), args.steps or quick.get("steps") or [1, 10])
    for i, (model, case, length, n_steps) in enumerate(todo, start=1):
        if (model, case, n_steps) in capped:
            continue
        print(f"[{i}/{len(todo)}] {model} {case} L={length} T={n_steps}", file=sys.stderr, flush=True)
        rows.append(run_child({**base, "model": model, "case": case, "prompt_len": length, "steps": n_steps}))
        if rows[-1].prompt_len < length:
            capped.add((model, case, n_steps))
    out = args.out or RESULTS / f"scaling{'-quick' if args.quick else ''}.csv"
    write_csv(rows, out)
    print(format_table(rows))
    print(f"\nwrote {out}")
    return rows


if __name__ == "__main__":
    main()
