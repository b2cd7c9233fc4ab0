"""The explain command: prompt files, --save and --methods."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest
from helpers import assert_one_line_error, error_lines, run_cli, run_cli_lines


def test_cli_file_errors_are_one_line(capsys, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, "explain", "the cat", "--model", "tiny-llama", "--save", str(blocker / "r.npz"))
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("gradellm-lens explain: error: ")


def test_cli_prompts_file_one_report_for_all(capsys, tmp_path):
    lines = tmp_path / "prompts.txt"
    lines.write_text("the cat sat\n\nthe dog ran\n")
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text(json.dumps({"prompt": "the cat sat", "id": 1}) + "\n" + json.dumps({"prompt": "a red dog"}) + "\n")
    for source in (lines, jsonl):
        out = tmp_path / f"{source.stem}{source.suffix}.html"
        code, printed, err = run_cli(capsys, "explain", "--prompts-file", source, "--model", "tiny-llama",
                                  "--max-new-tokens", "2", "--out", out, "--save", tmp_path / f"{source.suffix}.npz")
        assert code == 0, err
        assert printed.count("step 1/2 ->") == 2 and "wrote" in printed
        page = out.read_text(encoding="utf-8")
        assert "Example 1" in page and "Example 2" in page and "Example 3" not in page
    assert sorted(p.name for p in tmp_path.glob(".jsonl.*.npz")) == [".jsonl.1.grad_ellm.npz", ".jsonl.2.grad_ellm.npz"]


def test_cli_prompts_from_stdin(capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the cat\nthe dog\n")))
    argv = ["explain", "--prompts-file", "-", "--model", "tiny-llama", "--max-new-tokens", "1"]
    code, printed, _ = run_cli(capsys, *argv)
    assert code == 0 and printed.count("step 1/1 ->") == 2


@pytest.mark.parametrize(
    "content,match",
    [
        (b"\n  \n", "holds no prompts"),
        (b"the cat\nthe \xff dog\n", r"prompts\.txt:2:.*0xff.*character 4"),
        (b'{"prompt": "the cat"}\n{"text": "the dog"}\n', r"prompts\.txt:2:.*object"),
        (b'{"prompt": "the cat"}\nthe dog\n', r"prompts\.txt:2:.*JSON"),
        (b'{"prompt": "the \\ud800 cat"}\n', r"prompts\.txt:1:.*'prompt'.*U\+D800"),
        (
            b'{"prompt": "the cat"}\n{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
            r"prompts\.txt:2:.*nested.*100",
        ),
        (b"the cat\nthe dog " + b"dog " * 200 + b"\n", r"prompts\.txt:2:.*context"),
        (b"the cat\n", r"prompts\.txt:1:.*context"),
    ],
)
def test_cli_bad_prompts_file_is_named_by_line(capsys, tmp_path, content, match):
    path = tmp_path / "prompts.txt"
    path.write_bytes(content)
    forced = ["--continuation", "dog " * 200] if content == b"the cat\n" else []  # one prompt, too long with it
    code, _, err = run_cli(capsys, "explain", "--prompts-file", path, "--model", "tiny-llama", *forced)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and re.search(match, lines[0]), lines


def test_cli_prompts_file_is_read_like_data_files(capsys, tmp_path, monkeypatch):
    """One JSONL reader: a BOM, U+2028 / U+0085 inside strings and a form feed in a plain line split nothing."""
    from gradellm_lens.cli.explain import read_prompts

    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps({"prompt": "the cat\u2028sat"}) + "\r\n").encode()
                     + json.dumps({"prompt": "the\x85dog"}, ensure_ascii=False).encode() + b"\n")  # fmt: skip
    assert read_prompts(str(path)) == [(f"{path}:1", "the cat\u2028sat"), (f"{path}:2", "the\x85dog")]
    plain = tmp_path / "prompts.txt"
    plain.write_bytes(b"\xef\xbb\xbfthe cat\x0csat\r\n\nthe dog\xe2\x80\xa8ran\n")
    assert read_prompts(str(plain)) == [(f"{plain}:1", "the cat\x0csat"), (f"{plain}:3", "the dog\u2028ran")]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"prompt": "the cat"}\n')))
    assert read_prompts("-") == [("<stdin>:1", "the cat")]
    code, out, _ = run_cli(capsys, "explain", "--prompts-file", path, "--model", "tiny-llama", "--max-new-tokens", "1")
    assert code == 0 and out.count("step 1/1 ->") == 2 and '"prompt"' not in out  # the prompts, not the raw JSON


def test_cli_prompt_and_prompts_file_are_exclusive(capsys, tmp_path):
    code, _, err = run_cli(capsys, "explain", "--model", "tiny-llama")
    assert code == 2 and "Give one prompt (quoted) or --prompts-file" in err


def test_explain_save_into_a_folder_is_refused_before_any_work(capsys, tmp_path):
    code, out, err = run_cli_lines(capsys, "explain", "the cat", "--model", "tiny-llama", "--save", tmp_path)
    assert_one_line_error(code, err, "explain", rf"--save {tmp_path}.*folder")
    assert out == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--methods", ","], "No methods given"),
        (["--methods", "grad_ellm,saliencee"], "Did you mean 'saliency'"),
        (["--methods", "grad_ellm,grad_ellm"], "given twice: grad_ellm"),
        (["--methods", "saliency:abs"], "'saliency'.*no variants"),
        (["--methods", "grad_ellm:refernce,saliency"], "Did you mean 'reference'"),
        (["--methods", "grad_ellm,saliency", "-O", "lyers=2"], "'lyers'.*Did you mean 'layers'"),
        (["--methods", "grad_ellm+layers=[5]"], "Layer index 5"),
        (["--methods", "occlusion+batch_size=0"], r"batch_size.*got 0\b"),
    ],
)
def test_explain_methods_errors(capsys, extra, match):
    code, _, err = run_cli_lines(capsys, "explain", "the cat", "--model", "tiny-llama", "--max-new-tokens", "1", *extra)
    assert_one_line_error(code, err, "explain", match)


def test_explain_methods_take_specs_and_route_options(capsys):
    argv = ["explain", "the cat", "--model", "tiny-llama", "--max-new-tokens", "1", "--no-color"]
    methods = ["--methods", "grad_ellm+layers=all,input_x_gradient,random", "-O", "sign=abs"]
    code, out, err = run_cli_lines(capsys, *argv, *methods)
    assert code == 0 and err == []
    assert "grad_ellm (default)" in out and "input_x_gradient (default)" in out and "random (default)" in out
    assert "note: grad_ellm has no option(s) sign" in out
    code, out, _ = run_cli_lines(capsys, *argv, "--methods", "grad_ellm,saliency", "--variant", "pattern")
    assert code == 0 and "grad_ellm (pattern)" in out and "note: saliency has no option(s) variant" in out
