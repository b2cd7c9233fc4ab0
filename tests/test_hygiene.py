"""The committed analyses hold no machine's paths: results, tables and scripts name files relative to the
repository (run logs, which hold absolute paths, are not committed; each results README has the commands)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABSOLUTE = re.compile(rb"(?<![\w.~-])/(?:work|root|check|home|Users)/")
"""An absolute home or work folder (``/work/...``, ``/root/...``, ``/check/...``, ``/home/...``, ``/Users/...``)."""


def tracked(*pathspecs: str) -> list[Path]:
    """The files git tracks under ``pathspecs``; skipped outside a git checkout (e.g. an unpacked sdist)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", *pathspecs], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_committed_run_logs():
    assert [p.relative_to(ROOT) for p in tracked("*.log")] == []
    ignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "analyses/results/**/*.log" in ignore


def test_no_tracked_file_under_analyses_holds_an_absolute_home_or_work_path():
    files = tracked("analyses")
    assert files, "analyses/ is tracked"
    offending = []
    for path in files:
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        for lineno, line in enumerate(path.read_bytes().splitlines(), start=1):
            if ABSOLUTE.search(line):
                offending.append(f"{path.relative_to(ROOT)}:{lineno}: {line[:160].decode(errors='replace')}")
    assert not offending, "absolute paths in committed analyses:\n" + "\n".join(offending[:20])


def test_the_path_pattern():
    hits = [b"/work/shared/data", b"see /root/.cache", b"(/check/x)", b"'/home/u/run'"]
    misses = [b"analyses/results/heads", b"../shared/data", b"runs/work/x", b"~/work/x", b"a.work/x"]
    assert all(ABSOLUTE.search(s) for s in hits) and not any(ABSOLUTE.search(s) for s in misses)
