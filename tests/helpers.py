"""Helpers shared by test files: the tiny model's context, a finite-scores check, and in-process command-line runs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import torch

from gradellm_lens import AttributionResult
from gradellm_lens.cli.main import main

CTX = 128  # tiny-llama's context

BASE = ["--model", "tiny-llama", "--device", "cpu", "--pis", "0.3,0.7", "--draws", "1", "--no-progress"]
# the tiny random model barely reads the text (ρ ≈ 0.03), so its steps count only with no ρ threshold
FAST = [*BASE, "--min-rho", "0"]


def finite_in_prefix(result: AttributionResult) -> bool:
    return all(torch.isfinite(result.step_scores(t)).all() for t in range(result.n_steps))


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """Run a command in-process: exit code, stdout and stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    """stderr lines other than one-line warnings."""
    return [line for line in err.strip().splitlines() if ": warning: " not in line]


def run_cli_lines(capsys, *argv) -> tuple[int, str, list[str]]:
    """Run a command in-process: exit code, stdout, and stderr lines other than one-line warnings."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.strip().splitlines() if ": warning: " not in line]


def assert_one_line_error(code: int, lines: list[str], command: str, match: str) -> None:
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith(f"gradellm-lens {command}: error: "), lines
    assert "Traceback" not in lines[0] and re.search(match, lines[0]), lines[0]


def finished_run(data_dir: Path, out: Path) -> Path:
    """A finished two-example run (``random`` on SST-2) in ``out``; returns its results file."""
    with contextlib.redirect_stdout(io.StringIO()):
        argv = ["evaluate", "--task", "sst2", *FAST, "--methods", "random", "--n", "2"]
        assert main([*argv, "--data-dir", str(data_dir), "--out-dir", str(out)]) == 0
    return out / "results.jsonl"
