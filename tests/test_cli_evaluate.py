"""The evaluate command: option and data errors, corrupted or mismatched results stores, and options
reaching the run configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from evaldata import SST2, write_task_files
from helpers import BASE, FAST, assert_one_line_error, finished_run, run_cli_lines

from gradellm_lens.cli.main import main
from gradellm_lens.errors import InvalidInputError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_task_files(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def good_run(data_dir, tmp_path_factory) -> Path:
    """A finished two-example run (``random`` on SST-2); tests copy its results file and break the copy."""
    return finished_run(data_dir, tmp_path_factory.mktemp("good"))


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--task", "sst3"], r"'sst3'.*Did you mean 'sst2'"),
        (["--methods", "grad_elm"], "'grad_elm'.*Did you mean 'grad_ellm'"),
        (["--methods", "grad_ellm:refernce"], "Did you mean 'reference'"),
        (["--methods", "grad_ellm+lyers=2"], "Did you mean 'layers'"),
        (["--methods", "saliency:abs"], "'saliency'.*no variants"),
        (["--methods", ","], "No methods"),
        (["--methods", "random,random"], "twice: random"),
        (["--methods", "grad_ellm:"], "'grad_ellm:'.*empty"),
        (["--methods", "grad_ellm+layers=1+layers=2"], r"'layers'.*twice"),
        (["--methods", "grad_ellm:pattern+variant=rope"], "gives the variant twice"),
        (["--methods", "saliency+sign=ab"], "sign.*'ab'.*Did you mean 'abs'"),
        (["--methods", "grad_ellm,grad_ellm:default"], "'grad_ellm' and 'grad_ellm:default'.*same"),
        (["--methods", "grad_ellm+layers=[-1],grad_ellm+layers=1"], "are the same computation"),
        (["--methods", "occlusion,occlusion+batch_size=4"], "are the same computation"),
        (["--min-rho", "1.5"], r"min_rho.*1\.5"),
        (["--random-maps", "0"], r"random_maps.*got 0\b"),
        (["--controls", "shufled"], "control.*'shufled'.*Did you mean 'shuffled'"),
        (["--model", "tiny-lama"], "'tiny-lama'.*Did you mean 'tiny-llama'"),
        (["--pis", "0,0.5"], r"π.*\[0\.0\]"),
        (["--pis", "0.5,1"], r"π.*\[1\.0\]"),
        (["--pis", "1.5"], "strictly between 0 and 1"),
        (["--pis=-0.2,0.5"], "strictly between 0 and 1"),
        (["--pis", "nan"], "strictly between 0 and 1"),
        (["--pis", ","], "pis is empty"),
        (["--pis", "0.7,0.3"], "pis.*increasing"),
        (["--pis", "0.5,x"], "--pis.*comma-separated"),
        (["--draws", "0"], r"n_draws.*got 0\b"),
        (["--draws", "-2"], "n_draws.*-2"),
        (["--n", "0"], r"\bn must.*got 0\b"),
        (["--n", "-3"], r"\bn must.*got -3"),
        (["--batch-size", "0"], "batch_size"),
        (["--bootstrap", "0"], r"--bootstrap.*got 0\b"),
        (["--rescale", "scale-clip"], "rescale.*'scale-clip'.*Did you mean 'scale_clip'"),
        (["--normalise", "maxx"], "normalise.*'maxx'.*Did you mean 'max'"),
        (["--probability", "dist"], "Did you mean 'distribution'"),
        (["--perturb", "usertext"], "perturb.*'usertext'.*Did you mean 'user_text'"),
        (["--split", "tset"], "split.*'tset'"),
        (["--label-match", "restrict"], "label_match.*'restrict'.*Did you mean 'restricted'"),
        (["--prompt-format", "chatml"], "prompt_format.*'chatml'.*Did you mean 'chat'"),
        (["--max-new-tokens", "0"], r"max_new_tokens.*got 0\b"),
        (["--max-text-tokens", "-1"], "max_text_tokens"),
        (["--source", "web"], "source.*'web'"),
        (["--shard-index", "3", "--num-shards", "2"], r"shard_index.*0\.\.1"),
    ],
)
def test_evaluate_option_errors_are_one_line_and_nothing_runs(capsys, data_dir, tmp_path, extra, match):
    argv = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--n", "2"]
    code, _, lines = run_cli_lines(capsys, *argv, "--data-dir", data_dir, "--out-dir", tmp_path / "run", *extra)
    assert_one_line_error(code, lines, "evaluate", match)
    assert not (tmp_path / "run").exists()  # refused before any example was evaluated


def test_evaluate_data_errors_name_file_and_line(capsys, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "sst2_validation.jsonl"
    lines = [json.dumps(SST2[0]), json.dumps(SST2[1]), '{"id": "x", "text": "the cat", "label": 1', json.dumps(SST2[2])]
    cases = {
        "\n".join(lines) + "\n": rf"{path}:3:.*JSON",
        json.dumps(SST2[0]) + "\n[1, 2]\n": rf"{path}:2:.*JSON object",
        json.dumps({**SST2[0], "label": 5}) + "\n": rf"{path}:1:.*label 5\b",
        json.dumps(SST2[0]) + "\n" + json.dumps(SST2[0]) + "\n": rf"{path}:2:.*duplicate.*'sst2-0'",
        "\n\n": rf"{path}.*no records",
        json.dumps(SST2[0]) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n": rf"{path}:2:.*nested",
    }
    argv = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--data-dir", folder]
    for text, match in cases.items():
        path.write_text(text, encoding="utf-8")
        code, _, err = run_cli_lines(capsys, *argv, "--out-dir", tmp_path / "run")
        assert_one_line_error(code, err, "evaluate", match)
    path.write_bytes(json.dumps(SST2[0]).encode() + b'\n{"id": "\xff"}\n')
    match = rf"{path}:2:.*0xff"
    assert_one_line_error(*run_cli_lines(capsys, *argv, "--out-dir", tmp_path / "run")[::2], "evaluate", match)
    code, _, err = run_cli_lines(capsys, *argv, "--data-dir", tmp_path / "nowhere", "--out-dir", tmp_path / "run")
    assert_one_line_error(code, err, "evaluate", r"'sst2_validation\.jsonl'.*not found.*nowhere")


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _record(line: bytes, **changes) -> bytes:
    record = json.loads(line)
    for key, value in changes.items():
        if value is None:
            record.pop(key)
        else:
            record[key] = value
    return (json.dumps(record) + "\n").encode()


def _corruptions(good: list[bytes]) -> dict[str, tuple[bytes, str]]:
    """name -> (file content, expected error) for stores damaged other than by an interrupted write."""
    header, first, second = good
    mean, config = json.loads(first)["mean"], json.loads(header)["config"]
    steps = json.loads(first)["steps"]
    return {
        "NaN literal in a metric": (header + _record(first, mean={**mean, "soft_ns": float("nan")}) + second,
                                    r"results.jsonl:2: corrupt results line: the number NaN is not finite"),
        "Infinity in a step": (header + first + _record(second, steps=[{**steps[0], "rho": float("-inf")}]),
                               r"results.jsonl:3: corrupt results line: the number -Infinity is not finite"),
        "number too large for a float": (header + first.replace(b'"kind": "result"', b'"kind": "result", "x": 1e999'),
                                         r":2: corrupt results line: the number 1e999 is not finite"),
        "string metric": (header + _record(first, mean={**mean, "auc_pi_ns": "0.5"}),
                          r":2: corrupt result line: missing or invalid mean.auc_pi_ns \(str, not a number\)"),
        "string index": (header + _record(first, index="0"), r":2: corrupt result line: missing or invalid index"),
        "negative count": (header + _record(first, n_flat=-1), r":2:.*n_flat"),
        "uneven pi curve": (header + _record(first, mean={**mean, "pi_nc": mean["pi_nc"][:1]}),
                            r":2:.*mean\.pi_nc"),
        "uneven pi curve in a step": (header + _record(first, steps=[{**steps[0], "pi_ns": [0.1, 0.2, 0.3]}]),
                                      r":2:.*steps\[0\]\.pi_ns"),
        "header without task": (_record(header, config={k: v for k, v in config.items() if k != "task"}) + first,
                                r":1:.*config\.task"),
        "header without model name": (_record(header, config={**config, "model": {}}) + first,
                                      r":1:.*config\.model\.name"),
        "garbage line in the middle": (header + first + b"garbage\n" + second, r"results.jsonl:3: corrupt results"),
        "binary junk": (header + b"\xff\xfe\x00\n" + first, r"results.jsonl:2: corrupt results line"),
        "JSON that is not a record": (header + b"[1, 2]\n", r"results.jsonl:2: corrupt results line"),
        "result without a status": (header + _record(first, status=None), r":2: corrupt result line: .*status"),
        "result without an example id": (header + _record(first, example_id=None), r":2: corrupt result .*example_id"),
        "header without its fingerprint": (_record(header, config_fingerprint=None) + first, r":1: corrupt header"),
        "results before any header": (first + second, "first line is not a gradellm-lens .* header|without a header"),
        "another program's header": (_record(header, format="other") + first, "not a gradellm-lens evaluation results"),
    }  # fmt: skip


def test_corrupted_results_are_named_by_file_and_line(capsys, good_run, data_dir, tmp_path):
    good = _lines(good_run)
    assert len(good) == 3  # header + two results
    argv = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--n", "2", "--data-dir", data_dir]
    for name, (content, match) in _corruptions(good).items():
        run = tmp_path / name.replace(" ", "_")
        run.mkdir()
        (run / "results.jsonl").write_bytes(content)
        assert_one_line_error(*run_cli_lines(capsys, "summarize", run)[::2], "summarize", match)
        assert_one_line_error(*run_cli_lines(capsys, *argv, "--out-dir", run)[::2], "evaluate", match)
        assert (run / "results.jsonl").read_bytes() == content, f"{name}: a corrupted store was modified"


def test_ok_result_without_its_means_is_refused_by_summarize(capsys, good_run, tmp_path):
    header, first, _ = _lines(good_run)
    path = tmp_path / "results.jsonl"
    path.write_bytes(header + _record(first, mean=None))
    code, _, err = run_cli_lines(capsys, "summarize", path)
    assert_one_line_error(code, err, "summarize", r":2:.*status 'ok'")


def test_interrupted_last_line_is_repaired(capsys, good_run, data_dir, tmp_path):
    good = good_run.read_bytes()
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_bytes(good[: good.rfind(b"\n", 0, len(good) - 1) + 30])  # cut in the 2nd result
    code, out, err = run_cli_lines(capsys, "summarize", run, "--out-dir", tmp_path / "s")
    assert code == 0 and err == [] and "| random | 1 |" in out  # the complete lines are summarised
    argv = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--n", "2", "--data-dir", data_dir]
    code, out, err = run_cli_lines(capsys, *argv, "--out-dir", run)
    assert code == 0 and err == [] and "1 new result(s), 0 failed, 1 already done" in out
    assert "an interrupted last line was dropped first" in out
    repaired = [json.loads(line) for line in _lines(run / "results.jsonl")]
    assert [r["kind"] for r in repaired] == ["header", "result", "result"]
    assert {r["example_id"] for r in repaired[1:]} == {json.loads(line)["example_id"] for line in _lines(good_run)[1:]}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_refused_sharded_rerun_touches_no_file(capsys, good_run, data_dir, tmp_path):
    """Every check (the folder's other results files too) runs before a line is cut or a header written."""
    argv = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--n", "4", "--data-dir", data_dir]
    shard = ["--shard-index", "0", "--num-shards", "2"]
    run = tmp_path / "run"
    assert run_cli_lines(capsys, *argv, *shard, "--out-dir", run)[0] == 0
    own = run / "results.shard-0-of-2.jsonl"
    good = own.read_bytes()
    own.write_bytes(good[: good.rfind(b"\n", 0, len(good) - 1) + 30])  # an interrupted last line
    header, first, second = _lines(good_run)
    (run / "results.shard-1-of-2.jsonl").write_bytes(header + first + b"garbage\n" + second)
    before = _snapshot(run)
    code, _, err = run_cli_lines(capsys, *argv, *shard, "--out-dir", run)
    assert_one_line_error(code, err, "evaluate", r"results.shard-1-of-2.jsonl:3: corrupt results line")
    assert _snapshot(run) == before  # the own file's torn line is still there, byte for byte

    damaged = tmp_path / "damaged"  # only a damaged single-process file: no shard file may appear
    damaged.mkdir()
    (damaged / "results.jsonl").write_bytes(header + b"garbage\n" + first)
    before = _snapshot(damaged)
    code, _, err = run_cli_lines(capsys, *argv, *shard, "--out-dir", damaged)
    assert_one_line_error(code, err, "evaluate", r"results.jsonl:2: corrupt results line")
    assert _snapshot(damaged) == before


def test_results_with_other_options_are_refused(capsys, good_run, data_dir, tmp_path):
    argv = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--n", "2", "--data-dir", data_dir]
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_bytes(good_run.read_bytes())
    torn = good_run.read_bytes() + b'{"kind": "result", "example_id": "sst2-'  # a run killed mid-line
    (run / "results.jsonl").write_bytes(torn)
    code, _, err = run_cli_lines(capsys, *argv, "--out-dir", run, "--draws", "2")
    assert_one_line_error(code, err, "evaluate", r"metrics\.n_draws: 1 -> 2.*--overwrite")
    assert (run / "results.jsonl").read_bytes() == torn  # refused: the file is left exactly as it was
    (run / "results.jsonl").write_bytes(good_run.read_bytes())
    other = tmp_path / "other"
    code, _, err = run_cli_lines(capsys, *argv, "--out-dir", other, "--pis", "0.2,0.8")
    assert code == 0
    code, _, err = run_cli_lines(capsys, "summarize", run / "results.jsonl", other / "results.jsonl")
    assert_one_line_error(code, err, "summarize", r"metrics\.pis.*--allow-mixed")


def test_a_line_of_another_configuration_is_refused_not_merged(capsys, good_run, data_dir, tmp_path):
    argv = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--n", "2", "--data-dir", data_dir]
    other = tmp_path / "other"
    rerun = [*argv[:-4], "--n", "1", "--data-dir", data_dir, "--out-dir", other, "--draws", "2"]
    assert run_cli_lines(capsys, *rerun)[0] == 0
    pasted = _lines(other / "results.jsonl")[1]  # a --draws 2 line in a --draws 1 file
    run = tmp_path / "run"
    run.mkdir()
    content = good_run.read_bytes() + pasted
    (run / "results.jsonl").write_bytes(content)
    match = r"results\.jsonl:4:.*'random'.*fingerprint"
    assert_one_line_error(*run_cli_lines(capsys, "summarize", run)[::2], "summarize", match)
    assert_one_line_error(*run_cli_lines(capsys, *argv, "--out-dir", run)[::2], "evaluate", match)
    assert (run / "results.jsonl").read_bytes() == content


def test_results_of_another_version_are_refused_unless_allowed(capsys, good_run, data_dir, tmp_path, monkeypatch):
    import gradellm_lens

    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_bytes(good_run.read_bytes())
    current = gradellm_lens.__version__
    assert json.loads(_lines(good_run)[0])["config"]["gradellm_lens_version"] == current
    monkeypatch.setattr(gradellm_lens.versions, "__version__", "9.9.9")  # a later release resumes the run
    argv = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--n", "2", "--data-dir", data_dir]
    code, _, err = run_cli_lines(capsys, *argv, "--out-dir", run)
    assert_one_line_error(
        code, err, "evaluate", rf"{current}.*9\.9\.9.*--allow-mixed"
    )
    assert (run / "results.jsonl").read_bytes() == good_run.read_bytes()
    code, out, err = run_cli_lines(capsys, *argv, "--out-dir", run, "--allow-mixed")
    assert code == 0 and "2 new result(s)" in out and "@" in out  # each version's rows apart, labels suffixed
    code, _, err = run_cli_lines(capsys, "summarize", run)
    assert_one_line_error(
        code, err, "summarize", rf"gradellm_lens_version: '{current}' -> '9\.9\.9'"
    )


def test_a_fifo_as_the_results_file_is_refused_not_waited_on(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "results.jsonl")
    evaluate = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--n", "1", "--out-dir", str(run)]
    commands = [["summarize", str(run)], ["summarize", str(run / "results.jsonl")], evaluate]
    for argv in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "gradellm_lens.cli.main", *argv], capture_output=True, text=True, timeout=300,
            check=False,
        )  # a hang would fail here, on the timeout
        lines = [line for line in proc.stderr.strip().splitlines() if ": warning: " not in line]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert "results.jsonl is not a regular file (a FIFO, socket or device)" in lines[0]


def test_evaluate_options_reach_the_run_configuration(capsys, data_dir, tmp_path, monkeypatch):
    from gradellm_lens import evaluation

    seen = {}

    def fake_run(model, task, methods, out, config, **_hooks):
        seen.update(task=task, config=config)
        raise KeyboardInterrupt  # stop before any work; the CLI reports it as interrupted

    monkeypatch.setattr(evaluation, "run_evaluation", fake_run)
    argv = ["evaluate", "--task", "sst2", *BASE, "--methods", "random", "--data-dir", data_dir, "--out-dir", tmp_path]
    assert run_cli_lines(capsys, *argv)[0] == 130
    config, task = seen["config"], seen["task"]
    assert (config.perturb, config.min_rho, config.include_ill_conditioned) == ("user_text", 0.1, False)
    # the default preset, standard: two antithetic random maps (BASE gives --draws 1 explicitly)
    assert (config.preset, config.random_maps, config.antithetic) == ("standard", 2, True)
    assert (config.controls, task.options.prompt_format) == (("shuffled", "rank"), "plain")
    no_draws = [a for i, a in enumerate(argv) if a != "--draws" and (i == 0 or argv[i - 1] != "--draws")]
    assert run_cli_lines(capsys, *no_draws)[0] == 130 and seen["config"].metrics.n_draws == 1  # the preset's
    assert run_cli_lines(capsys, *no_draws, "--preset", "none")[0] == 130
    config = seen["config"]
    assert (config.preset, config.metrics.n_draws, config.random_maps, config.antithetic) == (None, 5, 10, False)
    extra = ["--perturb", "all", "--min-rho", "0.25", "--include-ill-conditioned", "--random-maps", "12",
             "--controls", "none", "--prompt-format", "chat"]  # fmt: skip
    assert run_cli_lines(capsys, *argv, *extra)[0] == 130
    config, task = seen["config"], seen["task"]
    assert (config.perturb, config.min_rho, config.include_ill_conditioned) == ("all", 0.25, True)
    assert (config.random_maps, config.controls, task.options.prompt_format) == (12, (), "chat")
    assert run_cli_lines(capsys, *argv, "--controls", "rank")[0] == 130 and seen["config"].controls == ("rank",)


@pytest.mark.filterwarnings("always::gradellm_lens.errors.UnknownTokenWarning")  # as a user sees them, no dedup
def test_evaluate_prints_one_unknown_token_warning(capsys, data_dir, tmp_path):
    argv = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--n", "3", "--data-dir", data_dir]
    assert main([str(a) for a in [*argv, "--out-dir", tmp_path]]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "UnknownToken" in line or "<unk>" in line]
    assert len(warned) == 1 and warned[0].startswith("gradellm-lens evaluate: warning: Task 'sst2', example ")


def test_debug_shows_the_exception(data_dir, tmp_path):
    with pytest.raises(InvalidInputError, match="n_draws"):
        main(["--debug", "evaluate", "--task", "sst2", *FAST, "--draws", "0", "--out-dir", str(tmp_path)])


def test_subprocess_malformed_data_file_is_one_line(tmp_path):
    path = tmp_path / "sst2_validation.jsonl"
    path.write_text(json.dumps(SST2[0]) + "\n" + '{"id": "x", "text": \n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "gradellm_lens.cli.main", "evaluate", "--task", "sst2", *FAST, "--methods", "random",
         "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    lines = [line for line in proc.stderr.strip().splitlines() if ": warning: " not in line]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"gradellm-lens evaluate: error: {path}:2: not valid JSON (")
