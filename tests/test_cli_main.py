"""The command-line entry point: one-line errors and warnings, interrupts, --debug, --version and help."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import warnings

import pytest
from evaldata import SST2, write_jsonl
from helpers import assert_one_line_error, error_lines, run_cli, run_cli_lines

import gradellm_lens as gl
from gradellm_lens.cli.main import main
from gradellm_lens.errors import LensError


@pytest.mark.parametrize(
    "argv,match",
    [
        (["explain", "", "--model", "tiny-llama"], "The prompt is empty"),
        (["explain", "the cat", "--model", "tiny-llama", "--method", "saliencee"], "Did you mean 'saliency'"),
        (["explain", "the cat", "--model", "tiny-llama", "--variant", "refernce"], "Did you mean 'reference'"),
        (["explain", "the cat", "--model", "tiny-llama", "-O", "lyers=2"], "Did you mean 'layers'"),
        (["explain", "the cat", "--model", "tiny-llama", "-O", "layers"], "must look like key=value"),
        (["explain", "the cat", "--model", "tiny-llama", "-O", "layers=[7]"], "Layer index 7 is out of range"),
        (["explain", "the cat", "--model", "tiny-llama", "--max-new-tokens", "0"], "max_new_tokens must be"),
        (["explain", "the cat", "--model", "tiny-llama", "--target", "a", "--continuation", "b"], "not both"),
        (["explain", "the cat", "--model", "tiny-llama", "--target", "cat", "--contrast", "cat"], "identically 0"),
        (["explain", "the " * 200, "--model", "tiny-llama"], "longer than the model's context"),
        (["explain", "the cat", "--model", "tiny-lama"], "Did you mean 'tiny-llama'"),
        (["explain", "the cat", "--model", "tiny-llama", "--dtype", "fp8"], "dtype='fp8' is invalid"),
        (["demo", "--model", "tiny-llama", "--max-new-tokens", "-1"], "max_new_tokens must be"),
    ],
)
def test_cli_errors_are_one_line(capsys, argv, match):
    code, _, err = run_cli(capsys, *argv)
    lines = error_lines(err)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"gradellm-lens {argv[0]}: error: ") and "Traceback" not in err
    assert re.search(match, lines[0])


def test_cli_argparse_errors_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "the cat", "--max-new-tokens", "x"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "usage:" not in err and err.endswith("; see gradellm-lens explain --help\n")
    with pytest.raises(SystemExit) as exc:
        main(["explian", "the cat"])
    assert exc.value.code == 2


def test_cli_warnings_are_one_line_each(capsys):
    code, _, err = run_cli(capsys, "explain", "the", "--model", "tiny-llama", "--target", "cat sat")
    assert code == 0
    assert err.strip() and all(line.startswith("gradellm-lens explain: warning: ") for line in err.strip().splitlines())


def test_cli_internal_errors_and_interrupts(capsys, monkeypatch):
    import gradellm_lens.attribute as attribute

    def crash(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(attribute, "explain", crash)
    code, _, err = run_cli(capsys, "explain", "the cat", "--model", "tiny-llama")
    assert code == 1 and err.strip() == (
        "gradellm-lens explain: internal error: RuntimeError: boom second line (rerun with --debug for the traceback)"
    )
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", "explain", "the cat", "--model", "tiny-llama"])

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(attribute, "explain", interrupt)
    code, _, err = run_cli(capsys, "explain", "the cat", "--model", "tiny-llama")
    assert code == 130 and err.strip() == "gradellm-lens explain: interrupted"


def test_cli_debug_shows_the_traceback(capsys):
    with pytest.raises(LensError, match="The prompt is empty"):
        main(["--debug", "explain", " ", "--model", "tiny-llama"])


def test_cli_subprocess_one_line_error():
    proc = subprocess.run(
        [sys.executable, "-m", "gradellm_lens.cli.main", "explain", "\x1b[31m the cat", "--model", "tiny-llama",
         "--target", "cat", "--contrast", "cat"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    expected = r"gradellm-lens explain: error: The contrast token id equals the target token id \(\d+\).*"
    assert re.fullmatch(expected, lines[0])


def test_warnings_do_not_leak_from_cli(capsys):
    before = warnings.showwarning
    run_cli(capsys, "explain", "", "--model", "tiny-llama")
    assert warnings.showwarning is before


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"gradellm-lens {gl.__version__}"


@pytest.mark.parametrize("command", ["explain", "demo", "methods", "study"])
def test_cli_every_option_has_help_showing_its_default(command):
    from gradellm_lens.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    text = " ".join(sub.format_help().split())
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
        default = action.default
        if action.option_strings and default not in (None, False, argparse.SUPPRESS):
            assert f"default: {default}" in text, f"{command} {action.option_strings[0]} does not show its default"
    assert "(default: 10)" in " ".join(build_parser().parse_args(["explain", "x"])._parser.format_help().split())


def test_cli_help_is_plain_text():
    from gradellm_lens.cli.main import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, text in [("gradellm-lens", parser.format_help())] + [(c, commands[c].format_help()) for c in
                                                                   ("explain", "demo", "methods", "study")]:  # fmt: skip
        for markup in ("`", ":class:", ":func:", ":mod:", ":math:", "\\"):
            assert markup not in text, (name, markup)


def test_cli_debug_is_accepted_after_the_command(capsys):
    with pytest.raises(LensError, match="The prompt is empty"):
        main(["explain", " ", "--model", "tiny-llama", "--debug"])
    code, _, err = run_cli(capsys, "explain", " ", "--model", "tiny-llama")  # and is off by default
    assert code == 2 and "Traceback" not in err


def test_cli_unquoted_prompt_gets_a_hint(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "the", "cat", "sat", "--model", "tiny-llama"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and 'Quote it: gradellm-lens explain "the cat sat"' in err
    with pytest.raises(SystemExit):
        main(["explain", "the cat", "--model", "tiny-llama", "--bogus"])
    assert "unrecognized arguments: --bogus" in (err := capsys.readouterr().err) and "Quote it" not in err


def test_cli_ctrl_c_during_imports_is_one_line(tmp_path):
    """Ctrl-C while torch is still being imported: exit 130 and one line, no traceback."""
    script = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from gradellm_lens.cli.main import main\n"
        "sys.exit(main(['explain', 'the cat', '--model', 'tiny-llama']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130 and proc.stderr == "gradellm-lens: interrupted\n", proc.stderr


def test_cli_text_that_is_not_utf8_exits_2_naming_the_position():
    """Undecodable bytes in argv (``$'the \\xff cat'``) reach Python as lone surrogates."""
    proc = subprocess.run(
        [sys.executable, "-m", "gradellm_lens.cli.main", "explain", b"the \xff cat", "--model", "tiny-llama"],
        capture_output=True, timeout=300,
    )  # fmt: skip
    err = proc.stderr.decode("utf-8", errors="replace")
    lines = error_lines(err)
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(r"^gradellm-lens explain: error: The prompt has the byte 0xff.*at character 4", lines[0])


@pytest.mark.parametrize(
    "argv,match",
    [
        (["summarize", "missing.jsonl"], r"missing\.jsonl.*does not exist"),
        (["summarize", "empty_folder"], "No results.*jsonl files in folder"),
        (["summarize", "empty.jsonl"], r"No results.*empty\.jsonl"),
        (["summarize", "data.jsonl"], r"data\.jsonl:1:.*corrupt"),
        (["summarize", "empty.jsonl", "--bootstrap", "0"], r"--bootstrap.*got 0\b"),
        (["methods", "saliencee"], "'saliencee'.*Did you mean 'saliency'"),
        (["study", "head_curvs"], "'head_curvs'.*Did you mean 'head_curves'"),
    ],
)
def test_summarize_methods_and_study_errors(capsys, tmp_path, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "empty.jsonl").write_bytes(b"")
    write_jsonl(tmp_path / "data.jsonl", SST2[:2])  # a data file is not a results file
    assert_one_line_error(*run_cli_lines(capsys, *argv)[::2], argv[0], match)


@pytest.mark.parametrize("command", ["evaluate", "summarize"])
def test_every_option_has_help_and_shows_its_default(command):
    from gradellm_lens.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    formatter = sub._get_formatter()
    for action in sub._actions:
        if not action.option_strings or action.dest == "help":
            continue
        text = formatter._get_help_string(action) % vars(action) if action.help else ""
        assert text, f"{action.option_strings} has no help"
        assert action.nargs == 0 or re.search(r"default|required", text), f"{action.option_strings}: {text}"
        assert not re.search(r"``|:math:|:func:|\\[a-z]+\{", text), f"{action.option_strings}: markup in {text!r}"
    usage = sub.format_help()
    assert "--prompt-format {plain,chat}" in usage if command == "evaluate" else "--bootstrap B" in usage


@pytest.mark.parametrize(
    "argv,match",
    [
        (["evaluate", "--n", "1.5"], r"--n/--num-examples.*'1\.5'"),
        (["evaluate", "--seed", "nan"], r"--seed.*'nan'"),
        (["evaluate", "--shard-index", "-1"], r"--shard-index.*-1"),
        (["bogus"], r"COMMAND.*'bogus'"),
    ],
)
def test_argparse_mistakes_are_one_line_with_a_pointer_to_help(capsys, argv, match):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    prog = "gradellm-lens" if argv[0] == "bogus" else f"gradellm-lens {argv[0]}"
    assert exc.value.code == 2 and len(lines) == 1, lines  # not the 28-line usage
    assert lines[0].startswith(f"{prog}: error: ") and lines[0].endswith(f"; see {prog} --help")
    assert re.search(match, lines[0]), lines[0]


def test_model_help_lists_every_builtin_model():
    from gradellm_lens.cli.main import build_parser
    from gradellm_lens.models.catalog import builtin_model_names

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name in ("explain", "demo", "evaluate"):
        text = " ".join(commands[name].format_help().split())
        assert all(model in text for model in builtin_model_names()), name
