"""Speed and memory benchmark: Grad-ELLM, the baselines, π-Soft and the peers against a plain gradient.

Usage::

    python benchmarks/run.py                        # SmolLM2 + tiny, L = 32/128/512, T = 1/10 (~20 min on 2 cores)
    python benchmarks/run.py --quick                # tiny model, short prompts: a smoke run (CI)
    python benchmarks/run.py --inseq-python /tmp/inseq-venv/bin/python   # add inseq rows
    python benchmarks/run.py --models tiny-llama --lengths 64 --steps 1 4 --repeats 3 --device cuda
    python benchmarks/run.py --model smollm2-135m-instruct --evaluate --before-rev d6e8b6b   # + evaluate throughput

Before and after: the ``[full_graph]`` / ``[whole]`` / ``[before]`` rows run the computation as it
was before the single-position gradients and the shared occlusion and π-Soft heads (see
:mod:`benchmarks.cases`), in the same run, and a before/after table puts the two ratios to the
floor side by side. ``--evaluate`` measures the whole ``gradellm-lens evaluate`` command
(:mod:`benchmarks.throughput`): example-method pairs per minute for this checkout and, with
``--before-rev``, for that git revision, with one process using every thread and with one
single-threaded shard per core.

For every model, prompt length ``L`` and number of explained steps ``T`` the rows of
:mod:`benchmarks.cases` are measured side by side: each is run once as warm-up, then the timed
repeats go round-robin over the rows (so a change in machine load hits every row alike), and
the median is kept. Each row's time and peak memory are divided by those of ``floor`` (one
forward + one full backward of the target logit to the token embeddings) of the same
configuration. Peak memory is measured in a separate run (:mod:`benchmarks.measure`).

Time budget: a row runs at most ``--repeats`` timed repeats, fewer when they would take longer
than ``--budget-s``; a non-floor row whose single run is predicted (from the shorter prompts) to
exceed ``--max-cell-s`` is skipped and says so. The table is printed and written as CSV (one line
per row, with the machine load at the time) and Markdown next to it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `gradellm_lens` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import measure, throughput  # noqa: E402
from benchmarks.cases import BEFORE_AFTER, Case, backward_paths, build_cases, task_pi_soft_cases  # noqa: E402
from benchmarks.inputs import BenchInput, make_input  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MODELS = ("smollm2-135m-instruct", "tiny-llama")
QUICK = {"models": ["tiny-llama"], "lengths": [16, 32], "steps": [1, 3], "repeats": 2, "budget_s": 1.0}


@dataclass
class Row:
    """One line of the table and of the CSV."""

    model: str
    steps: int
    prompt_len: int
    requested_len: int
    name: str
    group: str
    device: str
    threads: int
    wall_ms: float | None = None
    cpu_ms: float | None = None
    repeats: int = 0
    ratio: float | None = None
    cpu_ratio: float | None = None
    peak_mb: float | None = None
    mem_ratio: float | None = None
    load_avg: float | None = None
    total_s: float = 0.0
    note: str = ""

    @property
    def config(self) -> tuple[str, int, int]:
        return (self.model, self.steps, self.prompt_len)


@dataclass
class Options:
    models: list[str]
    lengths: list[int]
    steps: list[int]
    repeats: int
    device: str
    dtype: str | None
    threads: int
    budget_s: float
    max_cell_s: float
    max_cell_mb: float
    memory: bool
    captum: bool
    inseq_python: str | None
    pi_soft_draws: int | None = None
    pi_soft_task: str | None = "sst2"
    only: list[str] = field(default_factory=list)
    out: Path | None = None
    quiet: bool = False
    evaluate: bool = False
    before_rev: str | None = None
    eval_n: int = 2
    eval_methods: str = throughput.DEFAULT_METHODS
    layouts: list[tuple[int, int]] = field(default_factory=lambda: [(1, 2), (2, 1)])


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny model, L=16/32, T=1/3, 2 repeats (CI smoke run)")
    p.add_argument("--models", "--model", nargs="+", help=f"model names for load_model (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--lengths", nargs="+", type=int, help="prompt lengths L (default 32 128 512)")
    p.add_argument("--steps", nargs="+", type=int, help="numbers of explained steps T (default 1 10)")
    p.add_argument("--repeats", type=int, help="timed repeats per row after one warm-up (default 5)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="model dtype: float32 (default), bfloat16, float16")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    p.add_argument("--budget-s", type=float, help="time budget of a row's timed repeats (default 6)")
    p.add_argument("--max-cell-s", type=float, default=12.0, help="skip rows predicted to run longer (default 12)")
    p.add_argument("--max-cell-mb", type=float, default=3000.0, help="skip rows predicted to need more memory (default 3000)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument("--no-captum", action="store_true", help="skip the captum rows")
    p.add_argument("--inseq-python", help="python of a virtualenv with inseq 0.7.1: adds the inseq rows")
    p.add_argument("--pi-soft-draws", type=int, help="n_draws of the π-Soft rows (default: FaithfulnessConfig's)")
    p.add_argument("--pi-soft-task", default="sst2", help="task whose first chat prompt gets the user-text π-Soft rows ('none': skip)")
    p.add_argument("--evaluate", action="store_true", help="also measure `gradellm-lens evaluate` throughput (pairs per minute)")
    p.add_argument("--before-rev", help="git revision whose code gives the 'before' throughput (e.g. main's commit before the change)")
    p.add_argument("--eval-n", type=int, default=2, help="examples per throughput run (default 2)")
    p.add_argument("--eval-methods", default=throughput.DEFAULT_METHODS, help=f"methods of the throughput runs (default {throughput.DEFAULT_METHODS})")
    p.add_argument("--layouts", nargs="+", default=["1x2", "2x1"], help="processes x threads per throughput run (default 1x2 2x1)")
    p.add_argument("--only", nargs="+", default=[], help="run only rows whose name contains one of these (floors always run)")
    p.add_argument("--out", type=Path, help="CSV path (default benchmarks/results/<device>[-quick].csv); .md written next to it")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    quick = QUICK if a.quick else {}
    from gradellm_lens.models import resolve_device

    device = str(resolve_device(a.device))
    out = a.out or RESULTS / f"{torch.device(device).type}{'-quick' if a.quick else ''}.csv"
    return Options(
        models=a.models or quick.get("models") or list(DEFAULT_MODELS),
        lengths=a.lengths or quick.get("lengths") or [32, 128, 512],
        steps=a.steps or quick.get("steps") or [1, 10],
        repeats=a.repeats or quick.get("repeats") or 5,
        device=device,
        dtype=a.dtype,
        threads=a.threads,
        budget_s=a.budget_s or quick.get("budget_s") or 6.0,
        max_cell_s=a.max_cell_s,
        max_cell_mb=a.max_cell_mb,
        memory=not a.no_memory,
        captum=not a.no_captum,
        inseq_python=a.inseq_python,
        pi_soft_draws=a.pi_soft_draws,
        pi_soft_task=None if a.quick or a.pi_soft_task == "none" else a.pi_soft_task,
        only=a.only,
        out=out,
        quiet=a.quiet,
        evaluate=a.evaluate,
        before_rev=a.before_rev,
        eval_n=a.eval_n,
        eval_methods=a.eval_methods,
        layouts=[throughput.parse_layout(x) for x in a.layouts],
    )


def log(opts: Options, message: str) -> None:
    if not opts.quiet:
        print(message, file=sys.stderr, flush=True)


# ---- measuring one configuration ------------------------------------------------------------------
def measure_config(cases: list[Case], opts: Options, base: dict, budget: measure.Budget) -> list[Row]:
    """Warm up (measuring memory), then time round-robin, every case of one configuration."""
    rows: dict[str, Row] = {}
    active: list[tuple[Case, int]] = []
    steps, length = base["steps"], base["prompt_len"]
    for case in cases:
        row = rows[case.name] = Row(name=case.name, group=case.group, **base)
        reason = None if case.exempt else budget.skip_reason(case.name, steps, length, case.per_step_of)
        if reason:
            row.note = reason
            continue
        try:
            with backward_paths() as paths:
                warm, peak = measure.first_run(case.run, opts.device, opts.memory)
        except Exception as exc:  # a broken row is reported, not fatal
            row.note = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            continue
        row.total_s, row.peak_mb = warm.wall_s, (None if peak is None else peak / 2**20)
        if paths:
            row.note = "backward: " + "+".join(sorted(set(paths)))
        active.append((case, budget.plan_repeats(warm.wall_s)))
    samples: dict[str, list[measure.Sample]] = {case.name: [] for case, _ in active}
    for r in range(max((n for _, n in active), default=0)):
        for case, n in active:
            if r < n:
                samples[case.name].append(measure.timed(case.run, opts.device))
                rows[case.name].total_s += samples[case.name][-1].wall_s
    for case, n in active:
        row, sample = rows[case.name], measure.median(samples[case.name])
        row.wall_ms, row.cpu_ms, row.repeats = 1e3 * sample.wall_s, 1e3 * sample.cpu_s, n
        budget.record(case.name, steps, length, sample.wall_s, row.peak_mb)
    return list(rows.values())


def first_touch(cases: list[Case], opts: Options) -> None:
    """Run every non-metric case once, untimed: one-time allocations and lazy set-up happen here."""
    for case in cases:
        if case.group != "metric":
            try:
                case.run()
            except Exception:  # reported when the case runs for real
                pass


def add_ratios(rows: list[Row]) -> None:
    """Fill ``ratio`` / ``cpu_ratio`` / ``mem_ratio`` against the ``floor`` row of the same configuration."""
    floors = {r.config: r for r in rows if r.name == "floor" and r.wall_ms}
    for r in rows:
        f = floors.get(r.config)
        if f is None:
            continue
        if r.wall_ms is not None:
            r.ratio, r.cpu_ratio = r.wall_ms / f.wall_ms, (r.cpu_ms / f.cpu_ms if f.cpu_ms else None)
        if r.peak_mb is not None and f.peak_mb:
            r.mem_ratio = r.peak_mb / f.peak_mb


# ---- inseq (separate virtualenv) ------------------------------------------------------------------
def inseq_rows(opts: Options, hf_model, tokenizer, inputs: list[tuple[BenchInput, dict]]) -> list[Row]:
    """Run :mod:`benchmarks.inseq_worker` in ``--inseq-python`` on every configuration of one model."""
    worker = Path(__file__).resolve().parent / "inseq_worker.py"
    with tempfile.TemporaryDirectory(prefix="gradellm-bench-") as tmp:
        model_dir = Path(str(getattr(hf_model, "name_or_path", "")))
        if not (model_dir / "config.json").is_file():  # an in-memory model (the tiny one): write it out
            model_dir = Path(tmp) / "model"
            hf_model.save_pretrained(model_dir)
            tokenizer.save_pretrained(model_dir)
        configs = []
        for inp, base in sorted(inputs, key=lambda x: (x[1]["steps"], x[1]["prompt_len"])):
            start = int(int(inp.tokens[0]) in tokenizer.all_special_ids)  # inseq adds no BOS
            configs.append({
                "config": json.dumps(base), "steps": base["steps"], "length": base["prompt_len"],
                "prompt": tokenizer.decode(inp.tokens[start : inp.prompt_length]), "full": tokenizer.decode(inp.tokens[start:]),
            })  # fmt: skip
        spec = {
            "model_dir": str(model_dir), "device": opts.device, "threads": opts.threads, "repeats": opts.repeats,
            "budget_s": opts.budget_s, "max_cell_s": opts.max_cell_s, "max_cell_mb": opts.max_cell_mb,
            "memory": opts.memory, "configs": configs,
        }  # fmt: skip
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.run(
            [opts.inseq_python, str(worker), str(spec_path)], capture_output=True, text=True,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )  # fmt: skip
    rows = []
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        row = Row(name=rec["name"], group="peer", **json.loads(rec["config"]), load_avg=os.getloadavg()[0], note=rec["note"])
        if "wall_s" in rec:
            row.wall_ms, row.cpu_ms, row.repeats, row.peak_mb = 1e3 * rec["wall_s"], 1e3 * rec["cpu_s"], rec["repeats"], rec["peak_mb"]
            seen = (rec["n_prompt"], rec["n_continuation"])
            if seen == (row.prompt_len - 1, row.steps):
                row.note = "inseq sees the prompt without its BOS token"
            elif seen != (row.prompt_len, row.steps):
                row.note = f"inseq re-tokenised the text into {seen[0]} prompt + {seen[1]} continuation tokens"
        rows.append(row)
    if proc.returncode != 0 and not rows:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the inseq worker failed ({opts.inseq_python}): {tail[0]}")
    return rows


# ---- the run --------------------------------------------------------------------------------------
def plain_hf_model(name: str, opts: Options):
    """An independent, un-bridged HF copy of ``name`` (for ``floor[HF]``, captum and inseq)."""
    from gradellm_lens.models.loader import _resolve, resolve_dtype

    hf_model, tokenizer = _resolve(name, None, None)[:2]
    dtype = resolve_dtype(opts.dtype)
    if dtype is not None:
        hf_model = hf_model.to(dtype)
    return hf_model.to(opts.device).eval(), tokenizer


def run(opts: Options) -> list[Row]:
    """Measure every model / steps / length configuration; returns the rows (ratios filled)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(opts.threads)
    try:
        rows = _run_models(opts)
    finally:
        torch.set_num_threads(threads)
    add_ratios(rows)
    return rows


def _run_models(opts: Options) -> list[Row]:
    import gradellm_lens as gl

    rows: list[Row] = []
    for model_name in opts.models:
        log(opts, f"== {model_name}: loading")
        model = gl.load_model(model_name, device=opts.device, dtype=opts.dtype)
        hf_model, tokenizer = plain_hf_model(model_name, opts)
        pi_soft = {} if opts.pi_soft_draws is None else {"n_draws": opts.pi_soft_draws}
        first_touch(build_cases(model, make_input(model, 8, 2), hf_model=hf_model, captum=opts.captum), opts)
        for_inseq: list[tuple[BenchInput, dict]] = []
        budget = measure.Budget(opts.repeats, opts.budget_s, opts.max_cell_s, opts.max_cell_mb)
        for n_steps in sorted(opts.steps):
            done: set[int] = set()
            for length in sorted(opts.lengths):
                inp = make_input(model, length, n_steps)
                if inp.prompt_length in done:
                    continue
                done.add(inp.prompt_length)
                base = dict(
                    model=model_name, steps=n_steps, prompt_len=inp.prompt_length, requested_len=length,
                    device=opts.device, threads=opts.threads,
                )  # fmt: skip
                log(opts, f"-- {model_name} L={inp.prompt_length} T={n_steps} (load {os.getloadavg()[0]:.1f})")
                cases = build_cases(model, inp, hf_model=hf_model, pi_soft=pi_soft, captum=opts.captum)
                cases = [c for c in cases if c.group == "floor" or not opts.only or any(o in c.name for o in opts.only)]
                config_rows = measure_config(cases, opts, {**base, "load_avg": os.getloadavg()[0]}, budget)
                rows += config_rows
                for_inseq.append((inp, base))
                if not opts.quiet:
                    add_ratios(config_rows)
                    print(format_table(config_rows), file=sys.stderr, flush=True)
        if opts.pi_soft_task and (not opts.only or any("pi_soft" in o for o in opts.only)):
            rows += _task_pi_soft_rows(model, model_name, opts, pi_soft, budget)
        if opts.inseq_python:
            log(opts, f"-- {model_name}: inseq rows ({opts.inseq_python})")
            try:
                rows += inseq_rows(opts, hf_model, tokenizer, for_inseq)
            except Exception as exc:  # the peer is optional: say why its rows are missing, keep ours
                base = dict(model=model_name, steps=0, prompt_len=0, requested_len=0, device=opts.device, threads=opts.threads)
                rows.append(Row(name="inseq", group="peer", **base, note=f"error: {type(exc).__name__}: {exc}"))
        del model, hf_model
    return rows


def _task_pi_soft_rows(model, model_name: str, opts: Options, pi_soft: dict, budget: measure.Budget) -> list[Row]:
    """The user-text π-Soft rows on a chat prompt of ``opts.pi_soft_task`` (with their own floor)."""
    base = dict(model=model_name, steps=1, device=opts.device, threads=opts.threads)
    try:
        ids, cases = task_pi_soft_cases(model, opts.pi_soft_task, pi_soft)
    except Exception as exc:  # noqa: BLE001 - e.g. a tokenizer without a chat template: reported, not fatal
        note = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        return [Row(name=f"pi_soft[{opts.pi_soft_task} chat, user text]", group="metric", prompt_len=0, requested_len=0, **base, note=note)]
    length = int(ids.shape[0])
    log(opts, f"-- {model_name} π-Soft on a {opts.pi_soft_task} chat prompt, L={length} (load {os.getloadavg()[0]:.1f})")
    config_rows = measure_config(cases, opts, {**base, "prompt_len": length, "requested_len": length, "load_avg": os.getloadavg()[0]}, budget)
    add_ratios(config_rows)
    return config_rows


# ---- output -------------------------------------------------------------------------------------
def _fmt(x: float | None, spec: str) -> str:
    return "" if x is None else format(x, spec)


def table_blocks(rows: list[Row]) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """One block per (model, steps): title, header, per row name the cells ``ms ×floor MB ×floor`` per
    length, and notes (backward paths; other notes except the skip reasons, which are in the CSV)."""
    blocks = []
    for model, steps in dict.fromkeys((r.model, r.steps) for r in rows):
        sub = [r for r in rows if r.model == model and r.steps == steps]
        lengths = sorted({r.prompt_len for r in sub})
        header = ["method"] + [f"L={n} {c}" for n in lengths for c in ("ms", "×floor", "MB", "×floor")]
        body = []
        for name in dict.fromkeys(r.name for r in sub):
            line = [name]
            for n in lengths:
                r = next((x for x in sub if x.name == name and x.prompt_len == n), None)
                if r is None or r.wall_ms is None:
                    line += ["skip" if r is not None and r.note.startswith("skipped") else "—", "", "", ""]
                    continue
                line += [_fmt(r.wall_ms, ".0f"), _fmt(r.ratio, ".2f"), _fmt(r.peak_mb, ".1f"), _fmt(r.mem_ratio, ".2f")]
            body.append(line)
        grouped: dict[str, list[str]] = {}
        for r in sub:
            if r.note and not r.note.startswith("skipped"):
                names = grouped.setdefault(r.note, [])
                names += [] if r.name in names else [r.name]
        notes = [f"{note}: {', '.join(names)}" for note, names in grouped.items()]
        blocks.append((f"{model}, {steps} step{'s' if steps > 1 else ''}", header, body, notes))
    return blocks


def format_table(rows: list[Row], markdown: bool = False) -> str:
    """The blocks of :func:`table_blocks` as aligned text, or as Markdown tables."""
    out = []
    for title, header, body, notes in table_blocks(rows):
        if markdown:
            out += [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            out += ["| " + " | ".join(line) + " |" for line in body] + [""] + [f"- {n}" for n in notes]
            out += [""] if notes else []
            continue
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        fmt = lambda line: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))  # noqa: E731
        out += [title, fmt(header), *map(fmt, body), *[f"  {n}" for n in notes], ""]
    return "\n".join(out)


def before_after(rows: list[Row]) -> list[list[str]]:
    """One line per (after, before) pair of :data:`~benchmarks.cases.BEFORE_AFTER` and configuration:
    model, T, L, both ratios to the floor, the speed-up and both peak memories."""
    out = []
    for after, before in BEFORE_AFTER:
        for config in dict.fromkeys(r.config for r in rows):
            a = next((r for r in rows if r.name == after and r.config == config and r.wall_ms), None)
            b = next((r for r in rows if r.name == before and r.config == config and r.wall_ms), None)
            if a is None or b is None:
                continue
            model, steps, length = config
            out.append([
                after, model, str(steps), str(length), _fmt(b.ratio, ".2f"), _fmt(a.ratio, ".2f"),
                f"{b.wall_ms / a.wall_ms:.2f}", _fmt(b.peak_mb, ".0f"), _fmt(a.peak_mb, ".0f"),
            ])  # fmt: skip
    return out


BEFORE_AFTER_HEADER = ["row", "model", "T", "L", "before ×floor", "after ×floor", "speed-up", "before MB", "after MB"]


def format_before_after(rows: list[Row], markdown: bool = False) -> str:
    body = before_after(rows)
    if not body:
        return ""
    if markdown:
        lines = ["| " + " | ".join(BEFORE_AFTER_HEADER) + " |", "|" + "---|" * len(BEFORE_AFTER_HEADER)]
        return "\n".join(["**before / after**", "", *lines, *("| " + " | ".join(x) + " |" for x in body)])
    widths = [max(len(x[i]) for x in [BEFORE_AFTER_HEADER, *body]) for i in range(len(BEFORE_AFTER_HEADER))]
    return "\n".join(["before / after (ratios to the floor of the same configuration)"] + [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
        for line in [BEFORE_AFTER_HEADER, *body]
    ])  # fmt: skip


def summary(rows: list[Row]) -> list[str]:
    """The headline numbers: Grad-ELLM vs the floor, shared vs separate steps."""

    def get(name: str, config: tuple) -> Row | None:
        return next((r for r in rows if r.name == name and r.config == config and r.wall_ms), None)

    lines = []
    for config in dict.fromkeys(r.config for r in rows):
        model, steps, length = config
        ge, zf = get("grad_ellm", config), get("floor[hook_z last]", config)
        if steps == 1 and ge and ge.ratio is not None:
            tight = f", ×{ge.wall_ms / zf.wall_ms:.2f} of floor[hook_z last]" if zf else ""
            ga = get("grad_ellm[layers=all]", config)
            all_ = f"; layers=all ×{ga.ratio:.2f}" if ga and ga.ratio else ""
            lines.append(f"{model} L={length}: grad_ellm 1 step ×{ge.ratio:.2f} of floor{tight}{all_}")
        for shared, separate in (("grad_ellm", "grad_ellm[separate]"), ("grad_ellm[layers=all]", "grad_ellm[layers=all,separate]")):
            a, b = get(shared, config), get(separate, config)
            if a and b:
                lines.append(f"{model} L={length} T={steps}: {shared} shared computation {b.wall_ms / a.wall_ms:.1f}× faster than separate passes")
    return lines


def write_outputs(rows: list[Row], opts: Options) -> None:
    """CSV (all fields) and Markdown (the table and summary) at ``opts.out``."""
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    with opts.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    meta = (
        f"torch {torch.__version__}, device {opts.device}, {opts.threads} threads, {os.cpu_count()} CPUs, "
        f"repeats {opts.repeats} (median after 1 warm-up), {time.strftime('%Y-%m-%d %H:%M')}"
    )
    text = "\n".join([
        meta, "", format_before_after(rows, markdown=True), "", format_table(rows, markdown=True), "",
        *[f"- {s}" for s in summary(rows)], "",
    ])  # fmt: skip
    opts.out.with_suffix(".md").write_text(text)


def run_throughput(opts: Options) -> list[throughput.Throughput]:
    """``--evaluate``: :func:`benchmarks.throughput.measure` for every model; printed and written next to the CSV."""
    rows = []
    for model_name in opts.models:
        log(opts, f"== {model_name}: evaluate throughput ({opts.eval_n} examples, {opts.eval_methods})")
        rows += throughput.measure(
            model_name, before_rev=opts.before_rev, n_examples=opts.eval_n, methods=opts.eval_methods,
            task="sst2", layouts=opts.layouts, extra_args=["--perturb", "user_text"],
        )  # fmt: skip
    path = opts.out.with_name(opts.out.stem + "-throughput.md")
    meta = f"`gradellm-lens evaluate --task sst2 --perturb user_text --methods {opts.eval_methods} --n {opts.eval_n}`, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}"
    path.write_text("\n".join([meta, "", throughput.format_rows(rows, markdown=True), ""]))
    print(throughput.format_rows(rows))
    print(f"wrote {path}")
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    """Command-line entry point; returns the rows (for tests)."""
    opts = parse_args(argv)
    rows = run(opts)
    write_outputs(rows, opts)
    print(format_table(rows))
    print(format_before_after(rows))
    print("\n".join(summary(rows)))
    print(f"\nwrote {opts.out} and {opts.out.with_suffix('.md')}")
    if opts.evaluate:
        run_throughput(opts)
    return rows


if __name__ == "__main__":
    main()
