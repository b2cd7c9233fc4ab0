"""Wall time and peak memory of one callable, on CPU or CUDA.

Time
    ``time.perf_counter`` around the call (after ``torch.cuda.synchronize`` on CUDA), and the
    process CPU time (``time.process_time``, all threads) alongside it: on a shared machine wall
    time absorbs other processes' load, CPU time much less so. A case is run once as warm-up,
    then timed ``repeats`` times; the reported value is the median.

Peak memory
    How much more memory the call needed at its peak than was in use before it.
    On CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus
    ``memory_allocated`` before (tensor memory only).
    On CPU (Linux): the kernel's peak resident set size. Before the call, ``malloc_trim(0)`` hands
    the allocator's free pages back to the OS (so the baseline is what is live, not what earlier
    runs left cached) and writing ``5`` to ``/proc/self/clear_refs`` resets the peak counter; the
    result is ``VmHWM`` after the call minus ``VmRSS`` before it. This is exact at page granularity
    (no sampling), costs nothing, and counts everything the process touched: tensors, allocator
    fragmentation, Python objects. It is a separate run from the timed ones. On other systems
    (no ``clear_refs``) CPU memory is not measured. (``tracemalloc`` does not see torch's
    allocations; the ``torch.profiler`` memory timeline works but its event parsing takes minutes
    on a π-Soft evaluation.)

This module imports only ``torch`` so that the inseq worker (another virtualenv) can use it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import statistics
import time
from collections.abc import Callable
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


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str) -> int | None:
    """Peak memory of ``fn`` above the memory in use before the call (see module doc); None if unmeasurable."""
    device = torch.device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    if not cpu_peak_supported():
        return None
    gc.collect()
    trim = getattr(ctypes.CDLL(ctypes.util.find_library("c")), "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _proc_status_bytes("VmRSS:")
    fn()
    return max(0, _proc_status_bytes("VmHWM:") - before)
