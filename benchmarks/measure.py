"""Wall time and peak memory of one callable, on CPU or CUDA.

Time
    ``time.perf_counter`` around the call (after ``torch.cuda.synchronize`` on CUDA), and the
    process CPU time (``time.process_time``, all threads) alongside it: on a shared machine wall
    time absorbs other processes' load, CPU time much less so. A case is run once as warm-up,
    then timed ``repeats`` times; the reported value is the median.

Peak memory
    The peak of *tensor* memory allocated during the call, above what was allocated before it.
    On CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``. On CPU there is
    no allocator counter, and process RSS is a poor proxy (glibc keeps freed pages, so RSS reflects
    the history of the process more than the call). Instead the call runs once under
    ``torch.profiler`` with ``profile_memory=True``: every allocation and free of a CPU tensor is an
    event with a timestamp; their running sum, in time order, is the live tensor memory, and its
    maximum is the peak. This is the CPU analogue of ``max_memory_allocated`` at operator
    granularity (a temporary allocated and freed inside one operator is not seen). The profiled
    run is separate from the timed runs. Memory held by Python objects or by the allocator's
    caches is not counted.

This module imports only ``torch`` so that the inseq worker (another virtualenv) can use it.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


def plan_repeats(warm_s: float, repeats: int, budget_s: float) -> int:
    """Timed repeats after a warm-up of ``warm_s``: ``repeats``, fewer when they would exceed ``budget_s`` (at least 1)."""
    return max(1, min(repeats, int(budget_s // max(warm_s, 1e-9))))


def median(samples: list[Sample]) -> Sample:
    """Element-wise median of several samples."""
    return Sample(statistics.median(s.wall_s for s in samples), statistics.median(s.cpu_s for s in samples))


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null (the profiler's C++ start/stop lines); the run was already seen once."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str) -> int:
    """Peak tensor memory allocated by ``fn`` above the memory live before the call (see module doc)."""
    device = torch.device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start
    )
    live = peak = 0
    for event in events:
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak
