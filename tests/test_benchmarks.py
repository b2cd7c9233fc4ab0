"""Smoke test of ``benchmarks/run.py --quick`` (in-process) and of its measuring helpers. No timing assertions."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradellm_lens as gl  # noqa: E402
from benchmarks import measure, run  # noqa: E402


@pytest.mark.skipif(not measure.cpu_peak_supported(), reason="no /proc/self/clear_refs (not Linux)")
def test_peak_memory_is_the_high_water_mark_of_the_call():
    def work():
        a = torch.ones(1000, 1000)  # 4 MB
        b = torch.ones(2000, 1000)  # 8 MB
        del a
        c = torch.ones(3000, 1000)  # 12 MB: 20 MB live with b
        del b, c
        return torch.ones(10)

    # The peak is read from the resident set (VmHWM after clear_refs), so pages the allocator already
    # holds (freed, not returned) can serve part of the call without raising it: allow 10% below the
    # 20 MB live at the peak, and 30% above for the allocator's own bookkeeping.
    for _ in range(2):  # the second call starts from memory freed by the first, and must not count it
        assert 18e6 <= measure.peak_memory_bytes(work, "cpu") < 26e6


def test_budget_plans_repeats_and_skips_by_extrapolation():
    assert measure.extrapolate([], 128) is None
    assert measure.extrapolate([(32, 1.0)], 64) == pytest.approx(4.0)  # one point: quadratic
    assert measure.extrapolate([(32, 1.0), (64, 2.0)], 128) == pytest.approx(4.0)  # fitted exponent 1
    assert measure.extrapolate([(32, 1.0), (64, 1.0)], 128) == pytest.approx(2.0)  # exponent at least 1
    budget = measure.Budget(repeats=5, budget_s=10.0, max_cell_s=30.0, max_cell_mb=1000.0)
    assert [budget.plan_repeats(t) for t in (0.1, 4.0, 30.0)] == [5, 2, 1]
    budget.record("ig", 1, 32, 2.0, 100.0)
    assert budget.skip_reason("ig", 1, 64) is None  # 8 s, 400 MB
    assert "predicted 32 s" in budget.skip_reason("ig", 1, 128)
    budget.record("occ", 1, 32, 0.1, 300.0)
    assert "predicted 1200 MB" in budget.skip_reason("occ", 1, 64)
    assert budget.skip_reason("ig", 10, 32) is None  # 10 steps from 1 step, scaled by steps: 20 s
    assert "predicted 40 s" in budget.skip_reason("ig", 20, 32)
    budget.record("sal", 1, 64, 0.5, 10.0)
    budget.record("sal", 10, 32, 1.0, 10.0)  # alone, this extrapolates to 4 s at L=64
    assert budget.predict("sal", 10, 64)[0] == pytest.approx(4.0)  # the smaller of 4 s and 10 x 0.5 s
    budget.record("sal", 10, 64, 3.0, 10.0)
    assert budget.predict("sal", 10, 128)[0] == pytest.approx(9.0)  # no one-step time at L=128: exponent 1.58
    assert "already at T=1, L=128" in budget.skip_reason("ig", 10, 256)  # skipped once, skipped after
    budget.record("ge", 1, 64, 1.0, 10.0)
    budget.record("ge[separate]", 10, 32, 4.0, 10.0)  # alone, this extrapolates to 16 s at L=64
    assert budget.predict("ge[separate]", 10, 64, per_step_of="ge")[0] == pytest.approx(10.0)  # 10 passes of 1 s


def test_quick_run_writes_the_table(tmp_path, capsys):
    out = tmp_path / "quick.csv"
    rows = run.main(["--quick", "--lengths", "12", "--steps", "1", "3", "--repeats", "1", "--budget-s", "0.2",
                     "--pi-soft-draws", "1", "--threads", "1", "--out", str(out), "--quiet"])  # fmt: skip
    printed = capsys.readouterr().out

    methods = [m for m in gl.list_methods() if m != "grad_ellm"]
    common = ["floor", "floor[hook_z last]", "floor[HF]", "forward", "generate", "grad_ellm", "grad_ellm[layers=all]"]
    common += ["grad_ellm[full_graph]", "grad_ellm[layers=all,full_graph]", "attention_x_gradient[full_graph]", "occlusion[whole]"]
    common += [*methods, "captum:saliency", "captum:input_x_gradient", "captum:integrated_gradients"]
    expected = {
        1: [*common, "pi_soft", "pi_soft[before]"],
        3: [*common, "grad_ellm[separate]", "grad_ellm[layers=all,separate]"],
    }
    for steps, names in expected.items():
        got = [r for r in rows if r.steps == steps]
        assert sorted(r.name for r in got) == sorted(names)
        assert all(r.model == "tiny-llama" and r.prompt_len == 12 for r in got)
        for r in got:
            assert not r.note.startswith(("error", "skipped")), (r.name, r.note)
            assert r.wall_ms is not None and r.ratio is not None and r.repeats == 1
            assert r.peak_mb is not None or not measure.cpu_peak_supported()
        assert next(r for r in got if r.name == "floor").ratio == pytest.approx(1.0)
    multi = {r.name: r.note for r in rows if r.steps == 3}
    assert multi["grad_ellm[full_graph]"] == "backward: vmap"  # the batched backward ran, no silent fallback
    assert multi["grad_ellm"] == ""  # the single-position path: no capture_gradients call at all

    with out.open() as fh:
        records = list(csv.DictReader(fh))
    assert len(records) == len(rows)
    assert {"model", "steps", "prompt_len", "name", "wall_ms", "cpu_ms", "ratio", "peak_mb", "mem_ratio", "load_avg"} <= set(
        records[0]
    )
    markdown = out.with_suffix(".md").read_text()
    assert "**tiny-llama, 1 step**" in markdown and "**tiny-llama, 3 steps**" in markdown
    assert "| method | L=12 ms | L=12 ×floor | L=12 MB | L=12 ×floor |" in markdown
    assert "grad_ellm shared computation" in printed and "before / after" in printed
    assert "| row | model | T | L | before ×floor | after ×floor | speed-up |" in markdown
    pairs = {(line[0], line[2]) for line in run.before_after(rows)}
    assert {("grad_ellm", "1"), ("grad_ellm[layers=all]", "3"), ("attention_x_gradient", "3"), ("pi_soft", "1")} <= pairs


def test_evaluate_throughput_counts_the_pairs_of_a_real_run(tmp_path):
    from evaldata import write_task_files

    from benchmarks import throughput

    data_dir = write_task_files(tmp_path / "data")
    args = ["--task", "sst2", "--model", "tiny-llama", "--methods", "random,saliency", "--n", "2", "--overwrite",
            "--no-progress", "--data-dir", str(data_dir), "--device", "cpu"]  # fmt: skip
    row = throughput.run_layout("tiny-llama", throughput.ROOT, "after", 1, 1, args, tmp_path / "run")
    assert (row.pairs, row.layout, row.note) == (4, "1x1", "")
    assert row.seconds > 0 and row.pairs_per_min > 0
    assert "| tiny-llama | after | 1x1 | 4 |" in throughput.format_rows([row], markdown=True)
