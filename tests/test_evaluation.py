"""Evaluation runner, results store, summaries and the ``evaluate`` / ``summarize`` commands (tiny model)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from evaldata import SST2, write_task_files

from gradellm_lens.cli.main import main
from gradellm_lens.errors import InvalidInputError
from gradellm_lens.evaluation import (
    EvaluationConfig,
    MethodSpec,
    ResultsFile,
    RunHeader,
    bootstrap_ci,
    parse_method_specs,
    read_results,
    results_path,
    run_evaluation,
    summarize,
    write_summary,
)
from gradellm_lens.evaluation import runner as runner_module
from gradellm_lens.metrics import FaithfulnessConfig
from gradellm_lens.tasks import make_task

REPO = Path(__file__).resolve().parents[1]
FAST = FaithfulnessConfig(pis=(0.3, 0.7), n_draws=1)
# the tiny random model hardly reads the text (ρ ~ 0.03 when only the user text is masked), so the
# runner tests perturb every position (ρ ~ 0.3) unless they test the user-text default itself
CLI_FAST = ["--model", "tiny-llama", "--device", "cpu", "--pis", "0.3,0.7", "--draws", "1", "--no-progress",
            "--perturb", "all"]  # fmt: skip


@pytest.fixture
def data_dir(tmp_path):
    return write_task_files(tmp_path / "data")


def strict_json(line: str | bytes) -> dict:
    """``json.loads`` that refuses NaN / Infinity (results must never hold them as numbers)."""

    def refuse(constant: str):
        raise AssertionError(f"non-finite number {constant} in a results line")

    return json.loads(line, parse_constant=refuse)


def lines(path: Path) -> list[dict]:
    return [strict_json(line) for line in path.read_bytes().split(b"\n") if line]


def results(path: Path) -> list[dict]:
    return [r for r in lines(path) if r["kind"] == "result"]


def pairs(path: Path) -> list[tuple[str, str]]:
    return [(r["example_id"], r["method"]) for r in results(path)]


def run(model, data_dir, out, methods="grad_ellm,random", n=3, task="sst2", **config):
    task_options, hook = config.pop("task_options", {}), config.pop("hook", None)
    config.setdefault("perturb", "all")
    config.setdefault("random_maps", 2)
    cfg = EvaluationConfig(n=n, metrics=config.pop("metrics", FAST), progress=False, **config)
    return run_evaluation(model, make_task(task, data_dir=data_dir, **task_options), methods, out, cfg, on_record=hook)


# ---- method specs ----------------------------------------------------------------------------------


def test_method_specs_parse_variants_options_and_all():
    specs = parse_method_specs("grad_ellm, grad_ellm:reference+layers=[0,1],integrated_gradients+n_steps=8")
    assert [s.label for s in specs] == [
        "grad_ellm",
        "grad_ellm:reference+layers=[0,1]",
        "integrated_gradients+n_steps=8",
    ]
    assert specs[1].options == {"variant": "reference", "layers": [0, 1]} and specs[2].options == {"n_steps": 8}
    from gradellm_lens import list_methods

    assert [s.name for s in parse_method_specs("all")] == list_methods()
    for bad, message in [
        ("grad_elm", "Did you mean 'grad_ellm'"),
        ("saliency:x", "has no variants"),
        ("grad_ellm+layers", "key=value"),
        ("random,random", "given twice"),
        (" , ", "No methods"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            parse_method_specs(bad)


# ---- end to end through the CLI ----------------------------------------------------------------------


def test_cli_end_to_end_writes_results_summary_and_plot(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["evaluate", "--task", "sst2", *CLI_FAST, "--methods", "grad_ellm,grad_ellm:reference,saliency",
            "--prompt-format", "chat"]  # fmt: skip
    assert main([*argv, "--n", "3", "--data-dir", str(data_dir), "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "9 new result(s), 0 failed" in printed and "| grad_ellm:reference |" in printed
    records = lines(out / "results.jsonl")
    assert records[0]["kind"] == "header" and len(records) == 10
    assert sorted(pairs(out / "results.jsonl")) == sorted({(r["example_id"], r["method"]) for r in records[1:]})
    first = records[1]
    assert first["status"] == "ok" and first["n_steps"] == 1 and len(first["mean"]["pi_ns"]) == 2
    assert set(first["output"]) >= {"first_token", "gold", "predicted", "correct"}
    assert first["prompt_format"] == "chat" and records[0]["config"]["task"]["template"].startswith("Classify")
    rows = list(csv.DictReader((out / "summary.csv").open()))
    methods = ("grad_ellm", "grad_ellm:reference", "saliency")
    assert {r["method"] for r in rows} == {
        "(task)",
        *methods,
        *(f"{m} [{c}]" for m in methods for c in ("shuffled", "rank")),
    }
    paired = list(csv.DictReader((out / "summary_paired.csv").open()))
    assert ("grad_ellm", "grad_ellm [shuffled]", "auc_pi_nc") in {(r["a"], r["b"], r["metric"]) for r in paired}
    assert (out / "summary_pi_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "π-Soft-NC AUC" in (out / "summary.md").read_text()
    # the same command again computes nothing new
    assert main([*argv, "--n", "3", "--data-dir", str(data_dir), "--out-dir", str(out)]) == 0
    assert "0 new result(s), 0 failed, 9 already done" in capsys.readouterr().out
    # summarize merges a folder
    assert main(["summarize", str(out), "--out-dir", str(tmp_path / "s"), "--stem", "merged"]) == 0
    assert (tmp_path / "s" / "merged.csv").is_file()


def test_cli_errors_are_one_line_and_nonzero(data_dir, tmp_path, capsys):
    base = ["evaluate", *CLI_FAST, "--data-dir", str(data_dir), "--out-dir", str(tmp_path / "o")]
    for extra, message in [
        (["--task", "sst3"], "Did you mean 'sst2'"),
        (["--task", "sst2", "--methods", "grad_elm"], "Did you mean 'grad_ellm'"),
        (["--task", "sst2", "--pis", "0.5,x"], "--pis must be"),
        (["--task", "sst2", "--draws", "0"], "n_draws"),
        (["--task", "sst2", "--perturb", "everything"], "perturb='everything' is invalid"),
        (["--task", "sst2", "--shard-index", "2", "--num-shards", "2"], "shard_index"),
    ]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["summarize", str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_generation_task_explains_every_generated_step(tiny_model, data_dir, tmp_path):
    out = tmp_path / "r.jsonl"
    report = run(
        tiny_model, data_dir, out, task="tellmewhy", n=2, methods="grad_ellm", task_options={"max_new_tokens": 3}
    )
    assert report.written == 2 and report.failed == 0
    for r in results(out):
        assert 1 <= r["n_steps"] <= 3 and len(r["generated_ids"]) == r["n_steps"]
        assert [s["position"] for s in r["steps"]] == list(
            range(r["prompt_tokens"] - 1, r["prompt_tokens"] - 1 + r["n_steps"])
        )
        assert "references" in r["output"] and "correct" not in r["output"]


def test_user_text_perturbation_is_the_default_and_masks_only_the_dataset_tokens(tiny_model, data_dir, tmp_path):
    assert EvaluationConfig().perturb == "user_text"
    task = make_task("sst2", data_dir=data_dir, prompt_format="plain")
    run_evaluation(
        tiny_model, task, "random", tmp_path / "u.jsonl", EvaluationConfig(n=2, metrics=FAST, progress=False)
    )
    assert read_results(tmp_path / "u.jsonl")[0][0]["config"]["perturb"] == "user_text"
    for r in results(tmp_path / "u.jsonl"):
        assert r["perturb"] == "user_text" and r["steps"][0]["n_perturbable"] == r["user_tokens"] > 0
    run(tiny_model, data_dir, tmp_path / "a.jsonl", methods="random", n=2, perturb="all")
    for r in results(tmp_path / "a.jsonl"):
        assert r["perturb"] == "all" and r["steps"][0]["n_perturbable"] == r["prompt_tokens"] - 1


# ---- resume, kill, option mismatch ----------------------------------------------------------------------


class Stop(Exception):
    pass


def test_resume_after_an_exception_neither_duplicates_nor_loses(tiny_model, data_dir, tmp_path):
    out = tmp_path / "r.jsonl"
    seen = []

    def hook(record):
        seen.append(record)
        if len(seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        run(tiny_model, data_dir, out, n=4, hook=hook)
    before = out.read_text()
    assert len(results(out)) == 3
    report = run(tiny_model, data_dir, out, n=4)
    assert (report.written, report.skipped) == (5, 3)
    assert out.read_text().startswith(before)
    assert len(set(pairs(out))) == len(pairs(out)) == 8
    # growing n only adds the new examples
    assert run(tiny_model, data_dir, out, n=6).written == 4


def test_keyboard_interrupt_through_the_cli_resumes(data_dir, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real = runner_module.evaluate_pair

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_module, "evaluate_pair", flaky)
    argv = ["evaluate", "--task", "sst2", *CLI_FAST, "--methods", "random,saliency", "--n", "3",
            "--data-dir", str(data_dir), "--out-dir", str(tmp_path)]  # fmt: skip
    assert main(argv) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    assert len(results(tmp_path / "results.jsonl")) == 3
    assert main(argv) == 0
    assert sorted(pairs(tmp_path / "results.jsonl")) == sorted(
        {(r["example_id"], m) for r in results(tmp_path / "results.jsonl") for m in ("random", "saliency")}
    )
    assert len(results(tmp_path / "results.jsonl")) == 6


def test_kill_minus_nine_then_resume(data_dir, tmp_path):
    out = tmp_path / "killed"
    argv = ["evaluate", "--task", "sst2", *CLI_FAST, "--methods", "saliency,random", "--n", "6", "--draws", "2",
            "--data-dir", str(data_dir), "--out-dir", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradellm_lens.cli.main", *argv], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    path = out / "results.jsonl"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists() and path.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    before = [strict_json(line) for line in complete.splitlines()]
    assert before[0]["kind"] == "header" and 1 <= len(before) - 1 < 12
    assert main(argv) == 0
    data = path.read_bytes()
    assert data.endswith(b"\n") and data.startswith(complete)
    assert all(strict_json(line) for line in data.splitlines())
    got = pairs(path)
    assert len(got) == len(set(got)) == 12


def test_partial_last_line_is_dropped_and_corruption_elsewhere_is_reported(tmp_path):
    header = RunHeader({"task": {"task": "t", "kind": "generation"}, "model": {"name": "m"}}, {"m": {"method": "m"}})
    path = tmp_path / "r.jsonl"
    with ResultsFile(path, header) as store:
        store.append(
            {"example_id": "a", "method": "m", "fingerprint": header.method_fingerprint("m"), "status": "failed"}
        )
    good = path.read_bytes()
    path.write_bytes(good + b'{"kind": "result", "example_id": "b", "meth')
    assert read_results(path)[2] is True  # read-only view notices it and leaves the file alone
    with ResultsFile(path, header) as store:
        assert store.dropped_partial > 0 and store.done == {("a", header.method_fingerprint("m"))}
    assert path.read_bytes() == good
    path.write_bytes(good + b"garbage\n" + good.splitlines(keepends=True)[1])
    with pytest.raises(InvalidInputError, match=r"r\.jsonl:3:.*corrupt"):
        ResultsFile(path, header)
    with pytest.raises(InvalidInputError, match="corrupt"):
        read_results(path)


def test_results_of_grad_ellms_earlier_default_never_mix_with_the_new_one(tmp_path):
    """A file whose ``grad_ellm`` was the last layer, ReLU per layer (the 0.2 default), refuses the new default."""
    from gradellm_lens.methods import make_method
    from gradellm_lens.models import load_model

    model = load_model("tiny-llama")
    old = make_method("grad_ellm", model, variant="last_layer").describe()
    new = make_method("grad_ellm", model).describe()
    assert (old["layers"], old["combine"]) == ([model.cfg.n_layers - 1], "relu_then_sum")
    assert (new["layers"], new["combine"]) == (list(range(model.cfg.n_layers)), "sum_then_relu")
    config = {"task": {"task": "t", "kind": "generation"}, "model": {"name": "m"}}
    with ResultsFile(tmp_path / "r.jsonl", RunHeader(config, {"grad_ellm": {**old, "variant": "default"}})):
        pass
    with pytest.raises(InvalidInputError, match=r"method 'grad_ellm' was run with different options \((layers|combine)"):
        ResultsFile(tmp_path / "r.jsonl", RunHeader(config, {"grad_ellm": new}))


def test_a_second_writer_is_refused(tmp_path):
    header = RunHeader({"task": {"task": "t", "kind": "generation"}, "model": {"name": "m"}}, {"m": {}})
    with ResultsFile(tmp_path / "r.jsonl", header):
        with pytest.raises(InvalidInputError, match="another process"):
            ResultsFile(tmp_path / "r.jsonl", header)
    ResultsFile(tmp_path / "r.jsonl", header).close()  # the lock is released on close


def test_different_options_are_refused_unless_told(tiny_model, data_dir, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    run(tiny_model, data_dir, out, methods="random", n=2)
    with pytest.raises(InvalidInputError, match=r"metrics\.n_draws: 1 -> 2.*--overwrite"):
        run(tiny_model, data_dir, out, methods="random", n=2, metrics=FaithfulnessConfig(pis=(0.3, 0.7), n_draws=2))
    with pytest.raises(InvalidInputError, match=r"method 'random' was run with different options \(seed: 0 -> 1\)"):
        run(tiny_model, data_dir, out, methods=[MethodSpec("random", {"seed": 1})], n=2)
    # another batch size is not a different option; a new method is welcome
    report = run(tiny_model, data_dir, out, methods="random,saliency", n=2,
                 metrics=FaithfulnessConfig(pis=(0.3, 0.7), n_draws=1, batch_size=3))  # fmt: skip
    assert (report.written, report.skipped) == (2, 2)
    mixed = run(tiny_model, data_dir, out, methods="random", n=2, mode="allow_mixed",
                metrics=FaithfulnessConfig(pis=(0.3, 0.7), n_draws=2))  # fmt: skip
    assert mixed.written == 2 and sum(r["kind"] == "header" for r in lines(out)) == 3
    with pytest.raises(InvalidInputError, match="--allow-mixed"):
        summarize([out])
    labels = {m.label for m in summarize([out], allow_mixed=True).methods if m.control is None}
    assert len(labels) == 3 and all("@" in label for label in labels)
    assert run(tiny_model, data_dir, out, methods="random", n=1, mode="overwrite").written == 1
    assert sum(r["kind"] == "header" for r in lines(out)) == 1 and len(results(out)) == 1


# ---- failures are recorded, never averaged -----------------------------------------------------------


def test_nan_logits_and_nan_gradients_are_recorded_as_failures(tiny_model, data_dir, tmp_path):
    bad_word = tiny_model.tokenizer.convert_tokens_to_ids("terrible")
    nan = float("nan")

    def nan_logits(module, inputs, output):
        if (inputs[0] == bad_word).any():
            return output * nan

    def nan_gradients(module, inputs, output):
        if output.requires_grad:
            output.register_hook(lambda grad: grad * nan)

    examples = [e["id"] for e in SST2]
    bad_id = next(e["id"] for e in SST2 if "terrible" in e["text"])
    out = tmp_path / "r.jsonl"
    handle = tiny_model.embed.register_forward_hook(nan_logits)
    try:
        run(tiny_model, data_dir, out, methods="random", n=len(examples))
    finally:
        handle.remove()
    by_id = {r["example_id"]: r for r in results(out)}
    assert by_id[bad_id]["status"] == "failed" and "logits" in by_id[bad_id]["error"]
    assert by_id[bad_id]["mean"] is None and sum(r["status"] == "failed" for r in by_id.values()) == 1
    out2 = tmp_path / "g.jsonl"
    handle = tiny_model.blocks[1].register_forward_hook(nan_gradients)
    try:
        report = run(tiny_model, data_dir, out2, methods="saliency,random", n=2)
    finally:
        handle.remove()
    status = {(r["method"], r["status"]) for r in results(out2)}
    assert status == {("saliency", "failed"), ("random", "ok")} and report.failed == 2
    assert all("NaN" in r["error"] for r in results(out2) if r["method"] == "saliency")
    summary = summarize([out2])
    row = {m.label: m for m in summary.methods}
    assert row["saliency"].n_failed == 2 and row["saliency"].n_ok == 0 and not row["saliency"].metrics


# ---- sharding and summaries ----------------------------------------------------------------------------


def test_shards_partition_the_examples_and_merge_to_the_unsharded_result(tiny_model, data_dir, tmp_path):
    full = tmp_path / "full.jsonl"
    run(tiny_model, data_dir, full, methods="grad_ellm", n=5)
    shards = [results_path(tmp_path, i, 2) for i in range(2)]
    for i, path in enumerate(shards):
        run(tiny_model, data_dir, path, methods="grad_ellm", n=5, shard_index=i, num_shards=2)
    assert [len(results(p)) for p in shards] == [3, 2]
    merged, single = summarize(shards), summarize([full])
    assert merged.n_examples == 5
    assert merged.methods[0].metrics["auc_pi_nc"].mean == pytest.approx(single.methods[0].metrics["auc_pi_nc"].mean)
    with pytest.raises(InvalidInputError, match="shard"):
        run(tiny_model, data_dir, shards[0], methods="grad_ellm", n=5, shard_index=1, num_shards=2)


def test_a_run_resumes_from_the_shard_files_of_another_sharding(tiny_model, data_dir, tmp_path):
    run(tiny_model, data_dir, tmp_path / "full.jsonl", methods="grad_ellm", n=5)
    folder = tmp_path / "run"
    for i in (0, 1):  # shards 0 and 1 of 4: examples 0, 4 and 1
        run(tiny_model, data_dir, results_path(folder, i, 4), methods="grad_ellm", n=5, shard_index=i, num_shards=4)
    # the same run resumed as 2 shards (examples 0, 2, 4 and 1, 3) computes only what no file holds yet
    first = run(tiny_model, data_dir, results_path(folder, 0, 2), methods="grad_ellm", n=5, shard_index=0, num_shards=2)
    assert (first.written, first.skipped) == (1, 2)
    assert first.resumed_from == (results_path(folder, 0, 4),)
    second = run(
        tiny_model, data_dir, results_path(folder, 1, 2), methods="grad_ellm", n=5, shard_index=1, num_shards=2
    )
    assert (second.written, second.skipped, second.resumed_from) == (1, 1, (results_path(folder, 1, 4),))
    assert [r["index"] for r in results(results_path(folder, 0, 2))] == [2]
    merged = summarize(sorted(folder.glob("results*.jsonl")), n_boot=300)
    assert merged.duplicates == 0 and merged.n_examples == 5
    assert merged.to_csv() == summarize([tmp_path / "full.jsonl"], n_boot=300).to_csv()
    # a file holding the pairs already is not a source; overwrite starts over and reads no other file
    again = run(tiny_model, data_dir, results_path(folder, 0, 2), methods="grad_ellm", n=5, shard_index=0, num_shards=2)
    assert (again.written, again.skipped, again.resumed_from) == (0, 3, (results_path(folder, 0, 4),))
    fresh = run(
        tiny_model, data_dir, results_path(folder, 0, 2), methods="grad_ellm", n=5, shard_index=0, num_shards=2,
        mode="overwrite",
    )  # fmt: skip
    assert (fresh.written, fresh.skipped, fresh.resumed_from) == (3, 0, ())


def test_pairs_of_other_options_in_another_shard_file_are_recomputed(tiny_model, data_dir, tmp_path):
    other = FaithfulnessConfig(pis=(0.5,), n_draws=1)
    run(tiny_model, data_dir, results_path(tmp_path, 0, 4), methods="grad_ellm", n=4, num_shards=4, metrics=other)
    report = run(tiny_model, data_dir, results_path(tmp_path, 0, 2), methods="grad_ellm", n=4, num_shards=2)
    assert (report.written, report.skipped, report.resumed_from) == (2, 0, ())


def test_cli_resumes_from_another_sharding_and_summarises_every_example(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["evaluate", "--task", "sst2", *CLI_FAST, "--methods", "grad_ellm", "--n", "3", "--data-dir",
            str(data_dir), "--out-dir", str(out)]  # fmt: skip
    assert main([*argv, "--shard-index", "1", "--num-shards", "2"]) == 0
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 new result(s)" in printed and "1 already done" in printed
    assert "resumed from results.shard-1-of-2.jsonl" in printed
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {row["n"] for row in rows if row["method"] == "grad_ellm" and row["n"]} == {"3"}


def test_bootstrap_ci_matches_the_normal_approximation():
    x = np.tile([0.0, 1.0], 200)
    est = bootstrap_ci(x, n_boot=4000)
    half = 1.96 * x.std() / np.sqrt(len(x))
    assert (
        est.mean == 0.5
        and est.low == pytest.approx(0.5 - half, abs=0.006)
        and est.high == pytest.approx(0.5 + half, abs=0.006)
    )
    assert bootstrap_ci([0.3, 0.3, 0.3]).low == bootstrap_ci([0.3]).high == pytest.approx(0.3)
    curve = bootstrap_ci([[0.0, 1.0], [1.0, 1.0]])
    assert curve.mean == (0.5, 1.0) and curve.low[1] == curve.high[1] == 1.0
    with pytest.raises(InvalidInputError):
        bootstrap_ci([])


def _synthetic_file(path: Path, values: dict[str, list[float]], correct: list[bool]) -> Path:
    config = {"task": {"task": "sst2", "kind": "classification", "label_match": "first_token", "prompt_format": "chat"},
              "model": {"name": "m"}, "metrics": {"pis": [0.3, 0.7], "n_draws": 1, "rescale": "scale_clip",
              "probability": "target"}, "perturb": "all"}  # fmt: skip
    header = RunHeader(config, {label: {"method": label} for label in values})
    with ResultsFile(path, header) as store:
        for label, vals in values.items():
            for i, v in enumerate(vals):
                mean = {k: v for k in ("soft_ns", "soft_nc", "auc_pi_ns", "auc_pi_nc", "mean_score")}
                record = {"example_id": f"e{i}", "method": label, "fingerprint": header.method_fingerprint(label),
                          "output": {"correct": correct[i]}, "pis": [0.3, 0.7]}  # fmt: skip
                if v < 0:
                    record.update(status="failed", error="NumericalError: injected", mean=None)
                else:
                    record.update(status="ok", mean={**mean, "pi_ns": [v, v], "pi_nc": [v, 1 - v]})
                store.append(record)
    return path


def test_summary_numbers_on_a_synthetic_results_file(tmp_path):
    values = {"good": [0.9, 0.8, 0.7, 0.6], "bad": [0.1, 0.2, -1.0, 0.3]}
    path = _synthetic_file(tmp_path / "r.jsonl", values, [True, False, True, True])
    summary = summarize([path], n_boot=2000)
    good, bad = summary.methods
    assert (good.n_ok, bad.n_ok, bad.n_failed) == (4, 3, 1)
    assert good.metrics["auc_pi_nc"].mean == pytest.approx(0.75) and bad.metrics["soft_ns"].mean == pytest.approx(0.2)
    assert 0.6 <= good.metrics["auc_pi_nc"].low < 0.75 < good.metrics["auc_pi_nc"].high <= 0.9
    assert bad.curves["pi_nc"].mean == pytest.approx((0.2, 0.8))
    assert summary.accuracy.mean == pytest.approx(0.75) and summary.accuracy.n == 4 and summary.n_examples == 4
    table = summary.to_markdown()
    # fewer than 5 examples: the mean, no interval
    assert "| good | 4 | 0 | **0.750** (n too small) |" in table and "| bad | 3 | 1 | 0.200 (n too small) |" in table
    assert "bad failed: NumericalError: injected" in summary.to_report()
    rows = list(csv.DictReader(summary.to_csv().splitlines()))
    assert {"method": "(task)", "metric": "accuracy", "ci_low": "", "ci_high": ""}.items() <= rows[0].items()
    written = write_summary(summary, tmp_path / "out")
    assert [p.name for p in written] == ["summary.csv", "summary_paired.csv", "summary.md", "summary_pi_curves.png"]
    # a duplicated line (e.g. overlapping shards) is counted once
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(path.read_bytes())
    assert summarize([path, copy]).methods[0].n_ok == 4 and summarize([path, copy]).duplicates == 8


def test_results_never_hold_nan_numbers(tmp_path):
    header = RunHeader({"x": 1}, {"m": {}})
    with ResultsFile(tmp_path / "r.jsonl", header) as store:
        from gradellm_lens.errors import NumericalError

        with pytest.raises(NumericalError):
            store.append({"example_id": "a", "method": "m", "fingerprint": "f", "mean": {"soft_ns": float("nan")}})
    assert len(lines(tmp_path / "r.jsonl")) == 1


@pytest.mark.slow
def test_smollm2_sst2_end_to_end(smollm2, tmp_path):
    """The protocol on the real model: user-text perturbation, ρ on every step, random's maps, controls."""
    out = tmp_path / "s.jsonl"
    metrics = FaithfulnessConfig(pis=(0.3, 0.7), n_draws=1, batch_size=16)
    cfg = EvaluationConfig(n=2, metrics=metrics, progress=False, random_maps=3)
    task = make_task("sst2", label_match="restricted", prompt_format="plain")
    report = run_evaluation(smollm2, task, "grad_ellm,grad_ellm:reference,random,uniform", out, cfg)
    assert report.failed == 0 and report.written == 8
    for r in results(out):
        assert r["perturb"] == "user_text" and r["steps"][0]["n_perturbable"] == r["user_tokens"]
        assert all(s["ill_conditioned"] == (s["rho"] < 0.1) for s in r["steps"])
        assert r["status"] == ("ill_conditioned" if r["n_ill_conditioned"] == r["n_steps"] else "ok")
        assert ("controls" in r) == r["method"].startswith("grad_ellm") and ("maps" in r) == (r["method"] == "random")
    summary = summarize([out])
    assert summary.accuracy is not None and summary.accuracy.n == 2 and summary.protocol.median_rho is not None
    for m in summary.methods:
        assert all(0.0 <= e.mean <= 1.0 for e in m.metrics.values())
    assert records_are_finite(out)


def records_are_finite(path: Path) -> bool:
    ok = [r for r in results(path) if r["status"] == "ok"]
    return all(torch.isfinite(torch.tensor(r["mean"]["pi_ns"] + r["mean"]["pi_nc"])).all() for r in ok)


# ---- the run's time, estimated before it starts --------------------------------------------------------
def test_the_cost_model_counts_maps_inputs_and_steps():
    from gradellm_lens.evaluation.estimate import Measurement, duration, estimate, inputs_per_map

    assert inputs_per_map(5, 9) == 100  # the defaults: 2 draws-halves (NS, NC) x 5 draws x (1 + 9 π)
    measured = Measurement(length=10, forward_s=0.01, batch_s=0.64, batch_rows=64, attribute_s={"a": 0.5, "r": 0.1})
    maps = {"a": 3, "r": 10}  # a method with two controls; random with 10 maps
    run = estimate(measured, [["a", "r"], ["a"]], maps, steps=1, generation=False, inputs=100, batch_size=64,
                   mean_length=10)  # fmt: skip
    # per map 100 inputs at 0.01 s each; per example 2 forwards of 0.01 s (generation, references)
    assert run.seconds == pytest.approx((0.02 + 0.5 + 3 + 0.1 + 10) + (0.02 + 0.5 + 3))
    assert (run.pairs, run.examples, run.perturbed_inputs) == (3, 2, 1600)
    assert run.describe() == (
        "estimate: about 17 s for 3 pair(s) (2 example(s), 1 step each; 1,600 perturbed inputs in batches of 64), "
        "measured on the first example"
    )
    longer = estimate(measured, [["a"]], maps, steps=4, generation=True, inputs=100, batch_size=64, mean_length=18)
    assert longer.seconds == pytest.approx(4 * (0.02 + 3.5) * (18 + 2) / 10)  # 4 steps, prompts twice as long
    assert "up to 4 steps each" in longer.describe()
    assert [duration(t) for t in (0.2, 40, 600, 5400, 12_000)] == ["1 s", "40 s", "10 min", "1.5 h", "3.3 h"]


def test_evaluate_prints_its_estimate_before_the_first_pair(capsys, tmp_path):
    data = write_task_files(tmp_path / "data")
    argv = ["evaluate", "--task", "sst2", "--model", "tiny-llama", "--device", "cpu", "--pis", "0.3,0.7", "--draws",
            "1", "--no-progress", "--min-rho", "0", "--n", "2", "--data-dir", str(data),
            "--out-dir", str(tmp_path / "r"), "--methods", "random,saliency"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    estimate = [i for i, line in enumerate(out) if line.startswith("estimate: about ")]
    done = next(i for i, line in enumerate(out) if "new result(s)" in line)
    assert len(estimate) == 1 and estimate[0] < done
    # 2 examples x (random: the standard preset's 2 maps + saliency: itself and 2 controls) x 2 * 1 draw * (1 + 2 π)
    assert "for 4 pair(s) (2 example(s), 1 step each; 60 perturbed inputs in batches of 64)" in out[estimate[0]]
    assert main(argv) == 0  # resumed with nothing left to do: no estimate
    assert not any(line.startswith("estimate:") for line in capsys.readouterr().out.splitlines())


@pytest.mark.filterwarnings("ignore::gradellm_lens.UnknownTokenWarning")
def test_runner_records_flat_steps_and_the_summary_counts_them(tiny_model, tmp_path):
    from evaldata import write_task_files

    from gradellm_lens.tasks import make_task

    task = make_task("sst2", data_dir=write_task_files(tmp_path / "data"))
    config = EvaluationConfig(n=3, metrics=FaithfulnessConfig(pis=(0.3, 0.7), n_draws=1), progress=False)
    out = tmp_path / "r.jsonl"
    zero_v = [(f"blocks.{i}.attn.hook_v", lambda v, hook: v * 0) for i in range(tiny_model.cfg.n_layers)]
    with tiny_model.hooks(fwd_hooks=zero_v):  # every layer's value vectors 0: Grad-ELLM's maps are all 0
        run_evaluation(tiny_model, task, "grad_ellm,random", out, config)
    records = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    assert all(r["n_flat"] == sum(s["flat"] for s in r["steps"]) for r in records)
    summary = {m.label: m for m in summarize([out]).methods}
    assert (summary["grad_ellm"].n_flat_steps, summary["grad_ellm"].n_steps) == (3, 3)
    assert (summary["random"].n_flat_steps, summary["random"].n_steps) == (0, 3)
    table = summarize([out]).to_markdown()
    assert table.splitlines()[0].endswith("| flat steps |") and "| 3/3 |" in table and "| 0/3 |" in table
    assert "*Flat steps*" in summarize([out]).to_report()
    rows = [r for r in csv.DictReader(summarize([out]).to_csv().splitlines()) if r["metric"] == "n_flat_steps"]
    assert {(r["method"], r["mean"], r["n"]) for r in rows} == {("grad_ellm", "3", "3"), ("random", "0", "3")}


def test_summary_of_results_without_the_flat_flag(tmp_path):
    """Files written before the flag existed still summarise; the flat column says it is unknown."""
    config = {"task": {"task": "sst2", "kind": "classification", "prompt_format": "chat"}, "model": {"name": "m"},
              "metrics": {"pis": [0.3, 0.7], "n_draws": 1, "rescale": "scale_clip", "probability": "target"},
              "perturb": "all"}  # fmt: skip
    header = RunHeader(config, {"m": {"method": "m"}})
    mean = {k: 0.5 for k in ("soft_ns", "soft_nc", "auc_pi_ns", "auc_pi_nc", "mean_score")}
    with ResultsFile(tmp_path / "old.jsonl", header) as store:
        store.append({"example_id": "e0", "method": "m", "fingerprint": header.method_fingerprint("m"),
                      "status": "ok", "n_steps": 1, "pis": [0.3, 0.7],
                      "mean": {**mean, "pi_ns": [0.5, 0.5], "pi_nc": [0.5, 0.5]}})  # fmt: skip
    summary = summarize([tmp_path / "old.jsonl"])
    assert summary.methods[0].n_flat_steps is None and summary.methods[0].flat_cell() == "–"
    assert "| m | 1 | 0 |" in summary.to_markdown() and "n_flat_steps" not in summary.to_csv()
