"""The results store: validation on read, the package version in every fingerprint, a refused open
leaves the file untouched, and the version's single source."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

import gradellm_lens
from gradellm_lens.errors import InvalidInputError
from gradellm_lens.evaluation.store import VERSION_KEY, ResultsFile, RunHeader, check_record, read_results

CONFIG = {"task": {"task": "sst2", "kind": "classification"}, "model": {"name": "m"}, "metrics": {"n_draws": 1}}


def _header(version: str | None = None, **config) -> RunHeader:
    extra = {} if version is None else {"package_version": version}
    return RunHeader({**CONFIG, **config}, {"m": {"method": "m"}}, **extra)


def _result(header: RunHeader, example: str = "a", **changes) -> dict:
    record = {
        "example_id": example, "method": "m", "fingerprint": header.method_fingerprint("m"), "status": "ok",
        "index": 0, "pis": [0.3, 0.7], "n_steps": 1,
        "mean": {"soft_ns": 0.5, "pi_ns": [0.1, 0.2], "controls": {"rank": {"pi_nc": [0.3, 0.4], "x": None}},
                 "maps": [{"soft_ns": 0.4}, {"soft_ns": 0.6}]},
        "steps": [{"soft_ns": 0.5, "pi_ns": [0.1, 0.2], "rules_ns": ["a", "b"]}],
    }  # fmt: skip
    return {**record, **changes}


def _write(path: Path, header: RunHeader, *results: dict) -> bytes:
    with ResultsFile(path, header) as store:
        for record in results:
            store.append(record)
    return path.read_bytes()


def test_a_valid_file_reads_back(tmp_path):
    header = _header()
    _write(tmp_path / "r.jsonl", header, _result(header), _result(header, "b", status="failed", mean=None, error="x"))
    headers, results, partial = read_results(tmp_path / "r.jsonl")
    assert len(headers) == 1 and [r["example_id"] for r in results] == ["a", "b"] and not partial


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"])
def test_non_finite_numbers_are_refused_with_file_and_line(tmp_path, literal):
    header = _header()
    path = tmp_path / "r.jsonl"
    good = _write(path, header, _result(header))
    path.write_bytes(good + good.splitlines(keepends=True)[1].replace(b'"soft_ns": 0.5', b'"soft_ns": ' + literal))
    with pytest.raises(InvalidInputError, match=rf"r\.jsonl:3:.*number {literal.decode()}"):
        read_results(path)
    with pytest.raises(InvalidInputError, match=r"r.jsonl:3: .*not finite"):
        ResultsFile(path, header)


@pytest.mark.parametrize(
    "changes,problem",
    [
        ({"mean": {"soft_ns": "0.5"}}, r"mean.soft_ns \(str, not a number\)"),
        ({"mean": {"soft_ns": True}}, r"mean.soft_ns \(bool, not a number\)"),
        ({"mean": {"curve": [0.1, "x"]}}, r"mean.curve\[1\] \(str, not a number\)"),
        ({"mean": {"maps": [{"soft_ns": 0.1}, {"soft_ns": None}, {"soft_ns": "x"}]}}, r"mean.maps\[2\].soft_ns \(str"),
        ({"mean": {"pi_nc": [0.1]}}, r"mean.pi_nc \(a π curve needs one number per π, 2\)"),
        ({"mean": {"controls": {"shuffled": {"pi_ns": [0.1, 0.2, 0.3]}}}}, r"mean.controls.shuffled.pi_ns \(a π"),
        ({"steps": [{"pi_ns": [0.1]}]}, r"steps\[0\].pi_ns \(a π curve"),
        ({"mean": [0.5]}, "mean"),
        ({"mean": None}, "a result with status 'ok' needs both"),
        ({"pis": None}, "a result with status 'ok' needs both"),
        ({"pis": []}, r"pis \(not a list of numbers\)"),
        ({"pis": ["0.3"]}, r"pis \(not a list of numbers\)"),
        ({"index": "0"}, "index"),
        ({"index": True}, "index"),
        ({"index": -1}, "index"),
        ({"n_steps": "1"}, r"n_steps \(a count\)"),
        ({"n_flat": 1.5}, r"n_flat \(a count\)"),
        ({"steps": {"a": 1}}, "steps"),
        ({"output": "yes"}, "output"),
        ({"error": 3}, "error"),
        ({"status": None}, "status"),
        ({"status": "great"}, r"status \('great' is not one of ok, failed, degenerate, ill_conditioned\)"),
        ({"mean": {"soft_ns": 7.5}}, r"mean.soft_ns \(a metric value outside \[0, 1\]\)"),
        ({"mean": {"auc_pi_nc": 1e300}}, r"mean.auc_pi_nc \(a metric value outside"),
        ({"steps": [{"pi_ns": [0.1, -0.2]}]}, r"steps\[0\].pi_ns \(a metric value outside"),
        ({"controls": {"rank": {"mean_score": 2}}}, r"controls.rank.mean_score \(a metric value outside"),
        ({"maps": [{"soft_nc": 1.5}]}, r"maps\[0\].soft_nc \(a metric value outside"),
        ({"example_id": 7}, "example_id"),
    ],
)
def test_malformed_result_lines_are_named(tmp_path, changes, problem):
    header = _header()
    record = {"kind": "result", **_result(header, **changes)}
    assert check_record({"kind": "result", **_result(header)}) == []
    assert any(re.search(problem, p) for p in check_record(record)), check_record(record)
    path = tmp_path / "r.jsonl"
    good = _write(path, header)
    path.write_bytes(good + (json.dumps(record) + "\n").encode())
    with pytest.raises(InvalidInputError, match=rf"r\.jsonl:2:.*{problem}"):
        read_results(path)


@pytest.mark.parametrize(
    "config,problem",
    [
        ({"model": {"name": "m"}}, "config.task"),
        ({**CONFIG, "task": {"kind": "classification"}}, "config.task.task"),
        ({**CONFIG, "task": "sst2"}, "config.task"),
        ({**CONFIG, "model": {}}, "config.model.name"),
    ],
)
def test_malformed_headers_are_named(tmp_path, config, problem):
    record = _header().to_record()
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({**record, "config": config}) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=rf"r\.jsonl:1:.*{problem}"):
        read_results(path)
    entry = {**record, "methods": {"m": {"config": {}}}}
    path.write_text(json.dumps(entry) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"r\.jsonl:1:.*methods\.m"):
        read_results(path)


def test_deeply_nested_lines_are_refused_with_file_and_line(tmp_path):
    header = _header()
    path = tmp_path / "r.jsonl"
    good = _write(path, header, _result(header))
    record = {"kind": "result", **_result(header, example="b")}
    line = json.dumps(record).replace('"n_steps": 1', '"n_steps": 1, "x": ' + "[" * 100_000 + "]" * 100_000)
    path.write_bytes(good + line.encode() + b"\n")
    with pytest.raises(InvalidInputError, match=r"r\.jsonl:3:.*nested.*100"):
        read_results(path)
    with pytest.raises(InvalidInputError, match=r"r.jsonl:3: arrays/objects nested"):
        ResultsFile(path, header)


def test_fingerprints_are_recomputed_not_trusted(tmp_path):
    header = _header()
    path = tmp_path / "r.jsonl"
    good = _write(path, header, _result(header))
    head, line = good.splitlines(keepends=True)
    other = _header(metrics={"n_draws": 2})  # a line of a run with other options
    record = json.loads(head)
    edited_config = {**record, "config": {**record["config"], "metrics": {"n_draws": 2}}}  # fingerprint kept
    edited_method = {**record, "methods": {"m": {**record["methods"]["m"], "config": {"method": "x"}}}}
    cases = {
        "foreign fingerprint": (good + (json.dumps({"kind": "result", **_result(other)}) + "\n").encode(),
                                r"r.jsonl:3: the result of method 'm' has fingerprint '[0-9a-f]+', which no header"),
        "label of another method": (head + line.replace(b'"method": "m"', b'"method": "n"'),
                                    r"r.jsonl:2: the result of method 'n' has fingerprint"),
        "edited config": ((json.dumps(edited_config) + "\n").encode() + line,
                          r"r.jsonl:1: corrupt header line: .*config_fingerprint \(it is not the hash"),
        "edited method config": ((json.dumps(edited_method) + "\n").encode() + line,
                                 r"r.jsonl:1: corrupt header line: .*methods.m.fingerprint \(it is not the hash"),
        "result before the header": (line + head, r"r.jsonl:1: a result line without a header line above it"),
    }  # fmt: skip
    for name, (content, match) in cases.items():
        path.write_bytes(content)
        with pytest.raises(InvalidInputError, match=match):
            read_results(path)
        with pytest.raises(InvalidInputError, match=match):
            ResultsFile(path, header)
        assert path.read_bytes() == content, name


def test_the_version_is_part_of_every_fingerprint():
    now, old = _header(), _header("0.1.0")
    assert now.config[VERSION_KEY] == gradellm_lens.__version__ and old.config[VERSION_KEY] == "0.1.0"
    assert now.config_fingerprint != old.config_fingerprint
    assert now.method_fingerprint("m") != old.method_fingerprint("m")
    assert _header().config_fingerprint == now.config_fingerprint


def test_resuming_another_versions_results_is_refused_unless_mixed(tmp_path):
    path = tmp_path / "r.jsonl"
    old = _header("0.1.0")
    written = _write(path, old, _result(old))
    with pytest.raises(InvalidInputError, match=rf"0\.1\.0.*{re.escape(gradellm_lens.__version__)}"):
        ResultsFile(path, _header())
    assert path.read_bytes() == written
    now = _header()
    with ResultsFile(path, now, mode="allow_mixed") as store:
        assert store.done == {("a", old.method_fingerprint("m"))}  # the old result is not taken for a new one
        store.append(_result(now))
    headers, results, _ = read_results(path)
    assert [h["config"][VERSION_KEY] for h in headers] == ["0.1.0", gradellm_lens.__version__] and len(results) == 2


@pytest.mark.parametrize(
    "other",
    [
        lambda: _header(metrics={"n_draws": 2}),
        lambda: _header("0.0.1"),
        lambda: RunHeader(_header().config, {"m": {"method": "m"}}, shard_index=1, num_shards=2),
    ],
)
def test_a_refused_open_leaves_a_torn_last_line_alone(tmp_path, other):
    header = _header()
    path = tmp_path / "r.jsonl"
    torn = _write(path, header, _result(header)) + b'{"kind": "result", "example_id": "b", "me'
    path.write_bytes(torn)
    with pytest.raises(InvalidInputError, match="--overwrite"):
        ResultsFile(path, other())
    assert path.read_bytes() == torn
    with ResultsFile(path, header) as store:  # the same run resumes and cuts it
        assert store.dropped_partial > 0
    assert path.read_bytes() == torn[: torn.rfind(b"\n") + 1]


def test_the_version_has_one_source():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    project = tomllib.loads((Path(gradellm_lens.__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "gradellm_lens.versions.__version__"}
    assert tuple(int(x) for x in gradellm_lens.__version__.split(".")) >= (0, 2, 0)


def test_the_licence_is_an_spdx_expression_and_the_demo_installs_no_test_extras():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    root = Path(gradellm_lens.__file__).parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"  # a table ({text = ...}) is deprecated by setuptools
    assert "setuptools>=77" in project["build-system"]["requires"]  # the first to accept SPDX expressions
    make = (root / "Makefile").read_text(encoding="utf-8")
    targets = dict(re.findall(r"^([\w-]+):[ \t]*([^\n=]*)$", make, flags=re.MULTILINE))
    assert targets["demo"].split() == ["setup"] and "EXTRAS" not in make.split("\nsetup:")[1].split("\n\n")[0]
    assert all(targets[t].split() == ["setup-test"] for t in ("test", "test-fast", "test-slow"))
    assert re.search(r"^setup-test:\n\t@EXTRAS=\S*test\S* bash scripts/setup.sh$", make, flags=re.MULTILINE)
    setup = (root / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert 'pip install -q -e ".${EXTRAS:+[$EXTRAS]}"' in setup and "[test" not in setup
