"""The summarize command: the summary stem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from evaldata import write_task_files
from helpers import assert_one_line_error, finished_run, run_cli_lines


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_task_files(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def good_run(data_dir, tmp_path_factory) -> Path:
    """A finished two-example run (``random`` on SST-2)."""
    return finished_run(data_dir, tmp_path_factory.mktemp("good"))


def test_summarize_refuses_a_stem_that_is_not_a_plain_name(capsys, good_run, tmp_path):
    for stem in ("", ".hidden", "sub/summary", ".."):
        code, out, err = run_cli_lines(capsys, "summarize", good_run, "--out-dir", tmp_path / "s", "--stem", stem)
        assert_one_line_error(code, err, "summarize", rf"stem.*got {re.escape(repr(stem))}")
        assert out == "" and not (tmp_path / "s").exists()
