"""Sharded evaluation over the processes of a distributed launch (accelerate, torchrun, MPI).

Under ``accelerate launch --multi_gpu --num_processes N`` (or ``torchrun --nproc_per_node N``, or
``mpirun -n N``; note that ``accelerate launch --cpu`` starts a single process) the launcher starts ``N`` copies of the program with ``WORLD_SIZE = N`` and a distinct
``RANK`` in ``0..N-1`` (and ``LOCAL_RANK``, the rank on its machine). Each process then

1. takes shard ``RANK`` of ``N``: the examples ``i`` with ``i % N == RANK`` (see
   :mod:`.runner`), written to its own file ``results.shard-<RANK>-of-<N>.jsonl``;
2. runs on its own device: ``cuda:LOCAL_RANK`` on GPUs (``accelerate.PartialState().device``),
   the CPU otherwise; each process holds a full copy of the model (data parallelism over
   examples, no communication while evaluating);
3. waits for every other process (:func:`run_on_every_process`: one ``all_gather_object`` that
   carries each process's outcome; this is the barrier, and unlike a bare barrier it lets the main
   process report a failed shard instead of merging a partial run);
4. the main process (``RANK == 0``) merges the ``N`` shard files into the summary
   (:func:`find_shard_files` + :func:`~.summary.summarize`), which equals the summary of a
   single-process run: every pair's result depends only on the example and the options (the
   metric masks are seeded from a hash of the prefix and the target), and the summary does not
   depend on the order of the result lines.

CPU threads: processes on one machine share its cores. On the CPU each launched process lowers
torch's intra-op threads to its share, ``cores // LOCAL_WORLD_SIZE`` (at least 1;
:func:`share_cpu_threads`), so ``N`` processes never run ``N x cores`` threads; it leaves them alone
when ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set (by the user or the launcher) or torch
already uses no more than its share.

Rerunning resumes: each process reopens its own shard file and skips the pairs already in it or
in any other results file of the folder (:func:`~.store.finished_elsewhere`), so a run may be
resumed with another ``N`` (another partition of the examples into other files); the main process
then merges those files too (:attr:`ShardFiles.resumed`).

The process group comes from ``accelerate.PartialState`` (the ``distributed`` extra; also a
dependency of TransformerLens 4.x): ``nccl`` on CUDA, ``gloo`` on CPU, read from the launcher's
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` / ``MASTER_PORT`` (or MPI's
equivalents). A process that finds no launcher variables (``WORLD_SIZE`` unset or 1) is a plain
single process: nothing is initialised and this module does not import accelerate. Collectives get a long
timeout (:data:`DEFAULT_TIMEOUT`), since shards can finish hours apart.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch

from ..errors import InvalidInputError, LensError
from ..optional import require
from .runner import results_path
from .store import finished_elsewhere, read_results, results_files

T = TypeVar("T")
AUTO = "auto"
DEFAULT_TIMEOUT = timedelta(hours=72)
# Modules whose functions take ``group=dist.group.WORLD`` as a default argument, which Python evaluates
# on import: imported after the process group exists (transformers' modeling code imports them through
# torch.distributed.fsdp), they keep the group alive past destroy_process_group, and its gloo threads
# were then torn down at interpreter exit, intermittently aborting a finished process ("terminate
# called without an active exception", SIGABRT; sometimes SIGBUS). Imported first, they bind None.
_IMPORT_BEFORE_JOINING = ("torch.distributed.nn.functional", "torch.distributed.optim")
WORLD_SIZE_VARS: tuple[str, ...] = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARS: tuple[str, ...] = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
LOCAL_RANK_VARS: tuple[str, ...] = (
    "LOCAL_RANK",
    "MPI_LOCALRANKID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MV2_COMM_WORLD_LOCAL_RANK",
)
LOCAL_WORLD_SIZE_VARS: tuple[str, ...] = ("LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS")
THREAD_VARS: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


class ShardFailedError(LensError):
    """Another process of a distributed run failed; its finished results are kept for a rerun."""


def _env_int(names: tuple[str, ...], default: int, environ: Mapping[str, str]) -> int:
    for name in names:
        value = environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                raise InvalidInputError(f"Environment variable {name}={value!r} is not an integer.") from None
    return default


def launch_world_size(environ: Mapping[str, str] | None = None) -> int:
    """Number of processes the launcher started (``WORLD_SIZE`` or the MPI equivalents; 1 if unset)."""
    return _env_int(WORLD_SIZE_VARS, 1, os.environ if environ is None else environ)


def shard_arg(text: str) -> int | str:
    """argparse type of ``--shard-index`` / ``--num-shards``: a non-negative integer or ``"auto"``."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        raise InvalidInputError(f"expected an integer or 'auto', got {text!r}.") from None
    if value < 0:
        raise InvalidInputError(f"expected a non-negative integer or 'auto', got {value}.")
    return value


@dataclass(frozen=True)
class ProcessContext:
    """This process's place in the run.

    Attributes:
        rank: global rank, ``0..world_size-1`` (0: the main process, which merges the shards).
        world_size: number of processes (1: a plain single-process run).
        local_rank: rank on this machine (picks the GPU).
        device: the device this process evaluates on (None: the loader's default, CUDA if any).
        backend: the process-group backend (``gloo``, ``nccl`` ...); None for a single process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str | None = None
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise InvalidInputError(
                f"Inconsistent distributed environment: RANK={self.rank}, WORLD_SIZE={self.world_size}, "
                f"LOCAL_RANK={self.local_rank} (need 0 <= RANK < WORLD_SIZE); start the processes with "
                "accelerate launch or torchrun."
            )

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def resolve_shards(self, shard_index: int | str | None, num_shards: int | str | None) -> tuple[int, int]:
        """``(shard_index, num_shards)`` of this process; ``"auto"``/None take them from the launch.

        A single process defaults to shard 0 of 1 and keeps explicit values as given (manual
        sharding, e.g. one job per shard on a cluster; :class:`~.runner.EvaluationConfig`
        validates them). Under a distributed launch the shard is always ``(rank, world_size)``;
        explicit values must agree with it.

        Raises:
            InvalidInputError: explicit values that contradict the launch.
        """
        auto_index, auto_count = shard_index in (None, AUTO), num_shards in (None, AUTO)
        if not self.distributed:
            return (0 if auto_index else int(shard_index)), (1 if auto_count else int(num_shards))
        if (not auto_count and num_shards != self.world_size) or (not auto_index and shard_index != self.rank):
            raise InvalidInputError(
                f"This process is rank {self.rank} of {self.world_size} in a distributed launch, so it evaluates "
                f"shard {self.rank} of {self.world_size}; drop --shard-index/--num-shards (or pass 'auto'), got "
                f"{shard_index!r}/{num_shards!r}."
            )
        return self.rank, self.world_size

    def gather(self, obj: T) -> list[T]:
        """``obj`` of every process, by rank (blocks until all have called it; a barrier)."""
        if not self.distributed:
            return [obj]
        out: list = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        """Tear the process group down (no-op for a single process or when already closed)."""
        if self.distributed and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def share_cpu_threads(local_processes: int, environ: Mapping[str, str] | None = None) -> int:
    """Lower torch's intra-op threads to ``available_cores() // local_processes`` (at least 1).

    Nothing changes when ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` is set in ``environ`` (the user's
    or the launcher's choice) or when torch already uses no more threads than the share. Returns the
    number of threads torch uses afterwards.
    """
    environ = os.environ if environ is None else environ
    share = max(1, available_cores() // max(1, local_processes))
    if not any(environ.get(name) for name in THREAD_VARS) and torch.get_num_threads() > share:
        torch.set_num_threads(share)
    return torch.get_num_threads()


def _process_device(device: str | None, local_rank: int, use_cpu: bool) -> str | None:
    """An explicit device as given; else the CPU, or ``cuda:LOCAL_RANK`` (one GPU per process)."""
    if device not in (None, "cuda"):
        return device
    if use_cpu:
        return "cpu" if device is None else device  # "cuda" without CUDA: the loader explains
    return f"cuda:{local_rank % torch.cuda.device_count()}"


def import_before_joining() -> None:
    """Import the modules that capture the default process group on import, before there is one."""
    for module in _IMPORT_BEFORE_JOINING:
        importlib.import_module(module)


def init_process_context(
    device: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> ProcessContext:
    """Join the launcher's process group (if any) and say which shard and device are this process's.

    Args:
        device: the requested device (``--device``); None or ``"cuda"`` means one GPU per process
            (``cuda:LOCAL_RANK``) under a launch with CUDA, the CPU without CUDA.
        environ: the environment to read (default ``os.environ``).
        timeout: how long a collective waits for the slowest process.

    Returns:
        A single-process context when the launcher variables are absent, else a joined one.

    Raises:
        InvalidInputError: the launcher variables are inconsistent.
        MissingPackageError: a distributed launch without accelerate installed.
    """
    environ = os.environ if environ is None else environ
    world_size = launch_world_size(environ)
    if world_size <= 1:
        return ProcessContext(device=device)
    rank, local_rank = _env_int(RANK_VARS, 0, environ), _env_int(LOCAL_RANK_VARS, 0, environ)
    ProcessContext(rank, world_size, local_rank)  # validates before joining anything
    use_cpu = (
        not torch.cuda.is_available()
        or str(device).split(":")[0] == "cpu"
        or environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    )
    PartialState = require("accelerate", "distributed", f"WORLD_SIZE={world_size}: a distributed run").PartialState
    import_before_joining()
    state = PartialState(cpu=use_cpu, timeout=timeout)  # joins the process group (gloo on CPU, nccl on CUDA)
    rank, world_size, local_rank = state.process_index, state.num_processes, state.local_process_index
    if use_cpu:
        share_cpu_threads(_env_int(LOCAL_WORLD_SIZE_VARS, world_size, environ), environ)
    return ProcessContext(rank, world_size, local_rank, _process_device(device, local_rank, use_cpu), state.backend)


def run_on_every_process(context: ProcessContext, work: Callable[[], T]) -> T:
    """Run ``work`` in this process, then wait until every process has finished its own.

    A single process just returns ``work()``. In a distributed run every process reports its
    outcome to all others (the barrier): a process whose ``work`` raised re-raises it; the main
    process raises :class:`ShardFailedError` naming each failed rank when another process failed,
    so it never merges an incomplete run; the other successful processes return normally.
    Ctrl-C is not caught (the launcher stops every process).

    Raises:
        ShardFailedError: on the main process, when another process failed.
    """
    if not context.distributed:
        return work()
    result, error, failure = None, None, None
    try:
        result = work()
    except Exception as exc:  # noqa: BLE001 - reported to every process, then re-raised below
        error, failure = exc, f"{type(exc).__name__}: {exc}"
    outcomes = context.gather(failure)
    if error is not None:
        raise error
    failed = [(rank, message) for rank, message in enumerate(outcomes) if message is not None]
    if failed and context.is_main:
        detail = "; ".join(f"rank {rank}: {message}" for rank, message in failed)
        raise ShardFailedError(
            f"{len(failed)} of {context.world_size} processes failed ({detail}). Finished results are kept in "
            "their shard files: fix the cause and rerun the same command to resume."
        )
    return result  # type: ignore[return-value]


def shard_paths(out_dir: str | Path, num_shards: int) -> list[Path]:
    """The results files of the ``num_shards`` shards of a run in ``out_dir``, by shard index."""
    return [results_path(out_dir, index, num_shards) for index in range(num_shards)]


@dataclass(frozen=True)
class ShardFiles:
    """The results files of a sharded run as the main process finds them in the run folder.

    Attributes:
        present: this run's shard files that exist here (by shard index).
        missing: this run's shard files that do not: written on another machine without a shared
            file system (copy them here, then ``gradellm-lens summarize``).
        resumed: ``results*.jsonl`` files of another sharding (another number of processes) holding
            pairs of this run's configuration: the run skipped those pairs, and its summary merges
            these files.
        others: ``results*.jsonl`` files of another sharding with none of this run's pairs: neither
            resumed nor merged.
    """

    present: tuple[Path, ...]
    missing: tuple[Path, ...]
    others: tuple[Path, ...]
    resumed: tuple[Path, ...] = ()

    @property
    def merged(self) -> tuple[Path, ...]:
        """The files the run's summary is made of."""
        return self.present + self.resumed

    def notes(self, out_dir: str | Path) -> list[str]:
        """One line per thing the user should know (nothing when every shard is here)."""
        out = []
        if self.missing:
            names = ", ".join(p.name for p in self.missing)
            out.append(
                f"{len(self.missing)} shard file(s) are not on this machine ({names}): copy them into {out_dir} "
                f"and run: gradellm-lens summarize {out_dir}"
            )
        out += [f"{p} is from a run with another number of processes (resumed from and merged)" for p in self.resumed]
        out += [f"{p} is from a run with another number of processes (not merged)" for p in self.others]
        return out


def find_shard_files(out_dir: str | Path, num_shards: int) -> ShardFiles:
    """Sort the ``results*.jsonl`` files of ``out_dir`` into this run's (present / missing), resumed and others."""
    mine = shard_paths(out_dir, num_shards)
    present = tuple(p for p in mine if p.is_file())
    fingerprints = {
        entry["fingerprint"] for p in present for h in read_results(p)[0] for entry in h["methods"].values()
    }
    resumed = tuple(p for p in finished_elsewhere(mine[0], fingerprints) if p not in mine)
    others = tuple(p for p in results_files(out_dir) if p not in mine and p not in resumed)
    return ShardFiles(present, tuple(p for p in mine if not p.is_file()), others, resumed)
