"""Sharded evaluation across processes: shard/device resolution, the outcome barrier, and a real
2-process ``accelerate launch`` on CPU (gloo) whose merged summary equals a single-process run."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from evaldata import write_task_files

from gradellm_lens.cli.main import main
from gradellm_lens.errors import InvalidInputError, MissingPackageError
from gradellm_lens.evaluation import EvaluationConfig, run_evaluation, summarize
from gradellm_lens.evaluation.distributed import (
    AUTO,
    ProcessContext,
    ShardFailedError,
    find_shard_files,
    init_process_context,
    launch_world_size,
    run_on_every_process,
    shard_arg,
    shard_paths,
)
from gradellm_lens.metrics import FaithfulnessConfig

REPO = Path(__file__).resolve().parents[1]
LAUNCH_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")
EVALUATE = [
    "evaluate", "--task", "tellmewhy", "--model", "tiny-llama", "--device", "cpu", "--n", "3",
    "--max-new-tokens", "3", "--methods", "grad_ellm,random", "--pis", "0.3,0.7", "--draws", "2",
    "--no-progress", "--bootstrap", "200",
]  # fmt: skip


@pytest.fixture
def data_dir(tmp_path):
    return write_task_files(tmp_path / "data")


class FakeGroup(ProcessContext):
    """A distributed context whose gather returns the given outcomes of the other ranks (no processes)."""

    def __init__(self, rank: int, others: list[str | None]):
        super().__init__(rank=rank, world_size=len(others) + 1)
        object.__setattr__(self, "_others", others)

    def gather(self, obj):
        out = list(self._others)
        out.insert(self.rank, obj)
        return out


# ---- resolution of shards, devices and the launch environment ---------------------------------


def test_shard_arg_accepts_integers_and_auto():
    assert shard_arg("auto") == AUTO and shard_arg(" AUTO ") == AUTO and shard_arg("3") == 3
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(InvalidInputError, match="integer or 'auto'"):
            shard_arg(bad)


def test_world_size_comes_from_the_launcher_or_mpi_variables():
    assert launch_world_size({}) == 1
    assert launch_world_size({"WORLD_SIZE": "4"}) == 4
    assert launch_world_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    with pytest.raises(InvalidInputError, match="WORLD_SIZE='x'"):
        launch_world_size({"WORLD_SIZE": "x"})


def test_single_process_needs_no_accelerate_and_keeps_explicit_shards(monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)  # an import of accelerate would now fail
    context = init_process_context("cpu", environ={"WORLD_SIZE": "1"})
    assert context == ProcessContext(device="cpu") and not context.distributed and context.is_main
    assert context.resolve_shards(AUTO, AUTO) == (0, 1)
    assert context.resolve_shards(None, None) == (0, 1)
    assert context.resolve_shards(2, 3) == (2, 3)  # manual sharding (one job per shard)
    assert run_on_every_process(context, lambda: "done") == "done"
    context.close()  # no process group: nothing to do
    with pytest.raises(MissingPackageError, match=r"gradellm-lens\[distributed\]"):
        init_process_context(environ={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})


def test_inconsistent_launch_variables_are_refused():
    with pytest.raises(InvalidInputError, match="RANK=2, WORLD_SIZE=2"):
        init_process_context(environ={"WORLD_SIZE": "2", "RANK": "2"})


def test_a_launched_process_takes_its_rank_as_shard():
    context = ProcessContext(rank=1, world_size=3, local_rank=1, device="cpu", backend="gloo")
    assert context.distributed and not context.is_main
    assert context.resolve_shards(AUTO, AUTO) == (1, 3)
    assert context.resolve_shards(1, 3) == (1, 3)
    for index, count in ((0, 3), (AUTO, 2)):
        with pytest.raises(InvalidInputError, match="rank 1 of 3"):
            context.resolve_shards(index, count)


# ---- the barrier that carries each process's outcome --------------------------------------------


def test_main_process_reports_failed_shards_instead_of_merging():
    with pytest.raises(ShardFailedError, match=r"1 of 3.*rank 2: RuntimeError: boom"):
        run_on_every_process(FakeGroup(0, [None, "RuntimeError: boom"]), lambda: "merged")
    # a process that finished its shard while another failed returns normally (it has nothing to merge)
    assert run_on_every_process(FakeGroup(1, [None, "RuntimeError: boom"]), lambda: "mine") == "mine"
    assert run_on_every_process(FakeGroup(0, [None]), lambda: "all done") == "all done"


def test_a_failing_process_reports_then_reraises_its_own_error():
    seen = []

    class Recording(FakeGroup):
        def gather(self, obj):
            seen.append(obj)
            return super().gather(obj)

    def work():
        raise InvalidInputError("bad shard")

    with pytest.raises(InvalidInputError, match="bad shard"):
        run_on_every_process(Recording(1, [None]), work)
    assert seen == ["InvalidInputError: bad shard"]


def test_shard_files_present_missing_and_of_other_shardings(tmp_path):
    assert [p.name for p in shard_paths(tmp_path, 2)] == ["results.shard-0-of-2.jsonl", "results.shard-1-of-2.jsonl"]
    assert shard_paths(tmp_path, 1) == [tmp_path / "results.jsonl"]
    for name in ("results.shard-0-of-2.jsonl", "results.shard-1-of-3.jsonl", "results.jsonl", "notes.jsonl"):
        (tmp_path / name).write_text("")
    files = find_shard_files(tmp_path, 2)
    assert [p.name for p in files.present] == ["results.shard-0-of-2.jsonl"]
    assert [p.name for p in files.missing] == ["results.shard-1-of-2.jsonl"]  # written on another machine
    assert [p.name for p in files.others] == ["results.jsonl", "results.shard-1-of-3.jsonl"]
    notes = files.notes(tmp_path)
    assert "not on this machine (results.shard-1-of-2.jsonl)" in notes[0] and f"summarize {tmp_path}" in notes[0]
    assert len(notes) == 3 and "another number of processes" in notes[2]
    assert find_shard_files(tmp_path, 3).missing and not find_shard_files(tmp_path / "x", 1).present


def test_shard_files_of_another_sharding_with_this_runs_pairs_are_resumed_and_merged(tiny_model, data_dir, tmp_path):
    from gradellm_lens.tasks import make_task

    def run(out, pis=(0.3, 0.7), **shard):
        config = EvaluationConfig(n=4, metrics=FaithfulnessConfig(pis=pis, n_draws=1), progress=False, **shard)
        return run_evaluation(tiny_model, make_task("sst2", data_dir=data_dir), "grad_ellm", out, config)

    run(tmp_path / "results.shard-0-of-4.jsonl", shard_index=0, num_shards=4)  # this run's options
    run(tmp_path / "results.shard-1-of-4.jsonl", pis=(0.5,), shard_index=1, num_shards=4)  # other options
    assert run(shard_paths(tmp_path, 2)[0], shard_index=0, num_shards=2).skipped == 1
    files = find_shard_files(tmp_path, 2)
    assert [p.name for p in files.resumed] == ["results.shard-0-of-4.jsonl"]
    assert [p.name for p in files.others] == ["results.shard-1-of-4.jsonl"]
    assert [p.name for p in files.merged] == ["results.shard-0-of-2.jsonl", "results.shard-0-of-4.jsonl"]
    assert summarize(list(files.merged), n_boot=10).n_examples == 2
    assert any("resumed from and merged" in note for note in files.notes(tmp_path))


# ---- merged shards summarise exactly like one file ---------------------------------------------


def test_shard_files_summarise_exactly_like_a_single_file(tiny_model, data_dir, tmp_path):
    from gradellm_lens.tasks import make_task

    def run(out, **shard):
        config = EvaluationConfig(n=5, metrics=FaithfulnessConfig(pis=(0.3, 0.7), n_draws=1), progress=False, **shard)
        run_evaluation(tiny_model, make_task("sst2", data_dir=data_dir), "grad_ellm,random", out, config)

    run(tmp_path / "single.jsonl")
    shards = shard_paths(tmp_path / "sharded", 3)
    for i, path in enumerate(shards):
        run(path, shard_index=i, num_shards=3)
    single = summarize([tmp_path / "single.jsonl"], n_boot=300).to_csv()
    assert summarize(shards, n_boot=300).to_csv() == single  # bootstrap CIs included, digit for digit
    assert summarize(shards[::-1], n_boot=300).to_csv() == single


# ---- a real two-process launch ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LAUNCHED_THREADS = 1  # intra-op threads of each launched process


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def launch(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``accelerate launch`` 2 CPU processes (gloo), offline, with no user accelerate config."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS and not k.startswith("ACCELERATE_")}
    env.update(
        HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
        OMP_NUM_THREADS=str(LAUNCHED_THREADS), PYTHONPATH=str(REPO),
    )  # fmt: skip
    # --multi_gpu selects accelerate's torchrun launcher, which also runs CPU processes (accelerate's
    # --cpu flag starts a single process); --device cpu makes every process use gloo on the CPU.
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), "-m", "gradellm_lens.cli", *argv,
    ]  # fmt: skip
    return subprocess.run(command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def result_records(paths: list[Path]) -> dict[tuple[str, str], dict]:
    out = {}
    for path in paths:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["kind"] == "result":
                record.pop("timing")
                out[(record["example_id"], record["method"])] = record
    return out


def test_accelerate_launch_two_cpu_processes_match_a_single_process_and_resume(data_dir, tmp_path, capsys):
    single_dir, dist_dir = tmp_path / "single", tmp_path / "dist"
    # One intra-op thread, like each launched process: float32 reductions split across 2 threads sum in
    # another order, which moves π-Soft by ~2e-6 here; with equal thread counts the runs are bit-identical.
    with torch_threads(LAUNCHED_THREADS):
        assert main([*EVALUATE, "--data-dir", str(data_dir), "--out-dir", str(single_dir)]) == 0
    capsys.readouterr()

    argv = [*EVALUATE, "--data-dir", str(data_dir), "--out-dir", str(dist_dir)]
    proc = launch(argv, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shards = shard_paths(dist_dir, 2)
    assert all(p.is_file() for p in shards) and not (dist_dir / "results.jsonl").exists()
    assert "4 new result(s)" in proc.stdout and "2 new result(s)" in proc.stdout  # examples 0,2 and 1
    assert proc.stdout.count("wrote ") == 4  # only the main process merges (CSV, paired CSV, Markdown, PNG)

    single = result_records([single_dir / "results.jsonl"])
    merged = result_records(shards)
    assert merged.keys() == single.keys() and len(single) == 6
    for key in single:
        assert merged[key] == single[key], key  # bit for bit: same thread count, same float32 sums
    merged_rows, single_rows = (list(csv.DictReader((d / "summary.csv").open())) for d in (dist_dir, single_dir))
    assert merged_rows == single_rows

    # the same launch again: every pair is found in its shard file, nothing is recomputed or appended
    before = [p.read_bytes() for p in shards]
    proc = launch(argv, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.read_bytes() for p in shards] == before
    assert "0 new result(s), 0 failed, 4 already done" in proc.stdout
    assert "0 new result(s), 0 failed, 2 already done" in proc.stdout


GROUP_LIFETIME = """
import os, sys
import torch.distributed as dist
from gradellm_lens.evaluation.distributed import import_before_joining
if sys.argv[1] == "prepared":
    import_before_joining()
dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
import transformers.modeling_utils  # what loading a model imports after the launch has joined
dist.destroy_process_group()
print(sorted({open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")}))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names are read from /proc")
def test_the_process_group_really_ends_when_closed():
    """Its gloo threads stop at destroy_process_group, instead of being torn down at interpreter exit."""

    def threads_after_destroy(mode: str) -> str:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-c", GROUP_LIFETIME, mode]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    assert "gloo" in threads_after_destroy("unprepared")  # the leak this guards against, still in torch
    assert "gloo" not in threads_after_destroy("prepared")


def test_launched_cpu_processes_share_the_cores(monkeypatch):
    from gradellm_lens.evaluation import distributed

    monkeypatch.setattr(distributed, "available_cores", lambda: 8)
    with torch_threads(8):
        assert distributed.share_cpu_threads(4, environ={}) == 2  # 4 processes on 8 cores: 2 threads each
    with torch_threads(8):
        assert distributed.share_cpu_threads(4, environ={"OMP_NUM_THREADS": "8"}) == 8  # the user's choice
    with torch_threads(1):
        assert distributed.share_cpu_threads(2, environ={}) == 1  # never raised
    with torch_threads(8):
        assert distributed.share_cpu_threads(16, environ={}) == 1  # at least one
