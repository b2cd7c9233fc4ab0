"""``analyses/faithfulness_reads_text.py`` writes one row per (model, task, prompt format) on the tiny
model: classification rows carry accuracy and label statistics, generation rows ρ over every step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not (SHARED / "tellmewhy_test_annotated.jsonl").is_file(), reason="shared/data not present"
)


def test_reads_text_table_on_tiny_model():
    args = ["--models", "tiny-llama,no-such-model", "--formats", "plain,chat", "--n", "sst2=2,tellmewhy=2", "--max-new-tokens", "2", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "analyses" / "faithfulness_reads_text.py"), *args],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    head, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert head[:5] == ["model", "task", "prompt", "n", "steps"] and head[-1] == "ρ < 0.1"
    table = {tuple(row[:3]): dict(zip(head, row)) for row in rows}
    assert set(table) == {("tiny-llama", t, f) for t in ("sst2", "tellmewhy") for f in ("plain", "chat")} | {
        ("no-such-model", "–", "–")
    }
    assert all(len(row) == len(head) for row in rows)
    assert table[("no-such-model", "–", "–")]["n"].startswith("not available: Could not load model")
    for prompt_format in ("plain", "chat"):
        sst2 = table[("tiny-llama", "sst2", prompt_format)]
        assert (sst2["n"], sst2["steps"]) == ("2", "2")  # one explained step per classification example
        assert 0.0 <= float(sst2["accuracy"]) <= 1.0 and sst2["majority"] in {"0.50", "1.00"}
        assert sst2["predicted"].startswith("positive ") and ", negative " in sst2["predicted"]
        story = table[("tiny-llama", "tellmewhy", prompt_format)]
        assert story["n"] == "2" and 2 <= int(story["steps"]) <= 4  # up to 2 generated tokens each
        assert [story[c] for c in head[5:10]] == ["–"] * 5  # no labels in a generation task
        float(story["median ρ"])
        assert story["ρ < 0.1"].endswith("%")
