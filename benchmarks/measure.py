"""Wall time and peak memory of one callable, on CPU or CUDA.

Time
    ``time.perf_counter`` around the call (after ``torch.cuda.synchronize`` on CUDA), and the
    process CPU time (``time.process_time``, all threads) alongside it: on a shared machine wall
    time absorbs other processes' load, CPU time much less so. A case is run once as warm-up,
    then timed up to ``repeats`` times (:class:`Budget`); the reported value is the median.

Peak memory
    How much more memory the call needed at its peak than was in use before it.
    On CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus
    ``memory_allocated`` before (tensor memory only).
    On CPU (Linux): the kernel's peak resident set size. Before the call, ``malloc_trim(0)`` hands
    the allocator's free pages back to the OS (so the baseline is what is live, not what earlier
    runs left cached) and writing ``5`` to ``/proc/self/clear_refs`` resets the peak counter; the
    result is ``VmHWM`` after the call minus ``VmRSS`` before it. This is exact at page granularity
    (no sampling), costs nothing, and counts everything the process touched: tensors, allocator
    fragmentation, Python objects. It is measured on the warm-up run (a row's first run at this
    length; the very first run of each code path happens at a short length before). On other systems
    (no ``clear_refs``) CPU memory is not measured. (``tracemalloc`` does not see torch's
    allocations; the ``torch.profiler`` memory timeline works but its event parsing takes minutes
    on a π-Soft evaluation.)

This module imports only ``torch`` so that the inseq worker (another virtualenv) can use it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Sample:
    """One timed call: wall and process-CPU seconds."""

    wall_s: float
    cpu_s: float


def synchronize(device: torch.device | str) -> None:
    """Wait for queued kernels on CUDA; nothing on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device | str) -> Sample:
    """Run ``fn`` once and return its wall and CPU time."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(device)
    return Sample(time.perf_counter() - wall, time.process_time() - cpu)


def extrapolate(points: list[tuple[float, float]], x: float) -> float | None:
    """The value at ``x`` of a power law through the last two ``(x, y)`` points (exponent clamped to [1, 2]).

    With one point the exponent is 2 (attention is quadratic in the length); with none, None.
    """
    if not points:
        return None
    x2, y2 = points[-1]
    exponent = 2.0
    if len(points) > 1:
        x1, y1 = points[-2]
        if x2 > x1 and y1 > 0 and y2 > 0:
            exponent = min(2.0, max(1.0, math.log(y2 / y1) / math.log(x2 / x1)))
    return y2 * (x / x2) ** exponent


@dataclass
class Budget:
    """Which rows run, and how many timed repeats they get.

    A row runs ``repeats`` timed repeats after its warm-up, fewer when they would take longer than
    ``budget_s`` (at least one). A row is skipped when its single run is predicted to take longer
    than ``max_cell_s`` or to need more than ``max_cell_mb`` of memory: predicted from the same row
    at shorter prompts (:func:`extrapolate`) and from one step at the same length (:meth:`predict`).
    A row skipped once stays skipped for longer prompts and more steps. Configurations must be
    visited with steps and lengths ascending.
    """

    repeats: int
    budget_s: float
    max_cell_s: float
    max_cell_mb: float
    history: dict[tuple[str, int], list[tuple[int, float, float | None]]] = field(default_factory=dict)
    skipped: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # name -> (steps, length) skipped

    def plan_repeats(self, warm_s: float) -> int:
        return max(1, min(self.repeats, int(self.budget_s // max(warm_s, 1e-9))))

    def predict(self, name: str, steps: int, length: int, per_step_of: str | None = None) -> tuple[float | None, float | None]:
        """Predicted seconds and MB of one run of row ``name`` (None where nothing is known).

        Time: the smaller of the extrapolation from shorter prompts and, for ``steps > 1``, ``steps``
        times the one-step time of the row at this length (an upper bound for a row that repeats or
        batches a one-step computation per step). ``per_step_of`` names another row whose one-step
        time serves for that bound (``grad_ellm[separate]`` is ``steps`` runs of ``grad_ellm``).
        """
        same = self.history.get((name, steps), [])
        guesses = [extrapolate([(n, t) for n, t, _ in same], length)]
        mb = extrapolate([(n, m) for n, _, m in same if m], length)
        if steps > 1:
            one = [t for n, t, _ in self.history.get((per_step_of or name, 1), []) if n == length]
            guesses.append(one[-1] * steps if one else None)
        known = [g for g in guesses if g is not None]
        return (min(known) if known else None), mb

    def skip_reason(self, name: str, steps: int, length: int, per_step_of: str | None = None) -> str | None:
        """Why row ``name`` does not run at (``steps``, ``length``), or None when it runs."""
        earlier = [(s, n) for s, n in self.skipped.get(name, []) if s <= steps and n <= length]
        seconds, mb = self.predict(name, steps, length, per_step_of)
        if earlier:
            reason = f"skipped: over budget already at T={earlier[0][0]}, L={earlier[0][1]}"
        elif seconds is not None and seconds > self.max_cell_s:
            reason = f"skipped: predicted {seconds:.0f} s per run > --max-cell-s {self.max_cell_s:g}"
        elif mb is not None and mb > self.max_cell_mb:
            reason = f"skipped: predicted {mb:.0f} MB > --max-cell-mb {self.max_cell_mb:g}"
        else:
            return None
        self.skipped.setdefault(name, []).append((steps, length))
        return reason

    def record(self, name: str, steps: int, length: int, seconds: float, mb: float | None) -> None:
        self.history.setdefault((name, steps), []).append((length, seconds, mb))


def median(samples: list[Sample]) -> Sample:
    """Element-wise median of several samples."""
    return Sample(statistics.median(s.wall_s for s in samples), statistics.median(s.cpu_s for s in samples))


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024  # kB
    raise OSError(f"{key} missing from /proc/self/status")


def cpu_peak_supported() -> bool:
    """Whether the kernel lets this process reset and read its peak RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        _proc_status_bytes("VmHWM:")
    except OSError:
        return False
    return True


@contextmanager
def peak_memory(device: torch.device | str, enabled: bool = True) -> Iterator[list[int | None]]:
    """Measure the peak memory of the block above the memory in use before it (see module doc).

    Yields a list that holds, after the block, the peak in bytes (None when disabled or unmeasurable).
    """
    device, out = torch.device(device), []
    if not enabled or (device.type != "cuda" and not cpu_peak_supported()):
        yield out
        out.append(None)
        return
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield out
        synchronize(device)
        out.append(max(0, torch.cuda.max_memory_allocated(device) - before))
        return
    gc.collect()
    trim = getattr(ctypes.CDLL(ctypes.util.find_library("c")), "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _proc_status_bytes("VmRSS:")
    yield out
    out.append(max(0, _proc_status_bytes("VmHWM:") - before))


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str) -> int | None:
    """Peak memory of one call of ``fn`` (see :func:`peak_memory`)."""
    with peak_memory(device) as out:
        fn()
    return out[0]


def first_run(fn: Callable[[], object], device: torch.device | str, memory: bool = True) -> tuple[Sample, int | None]:
    """The warm-up run of a row: its time (discarded by callers) and its peak memory."""
    with peak_memory(device, memory) as out:
        sample = timed(fn, device)
    return sample, out[0]
