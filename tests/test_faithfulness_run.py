"""``analyses/faithfulness_run.py``: which protocol a verdict shard runs (the old defaults or a preset)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "analyses" / "faithfulness_run.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("faithfulness_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def protocol(script, *options: str) -> dict:
    config = script.protocol(script.parse_args(["--model", "m", "--out", "o", *options]))
    return {"draws": config.metrics.n_draws, "random_maps": config.random_maps, "antithetic": config.antithetic,
            "controls": config.controls, "preset": config.preset}  # fmt: skip


def test_without_a_preset_the_committed_verdict_protocol_runs(script):
    assert protocol(script) == {"draws": 3, "random_maps": 10, "antithetic": False,
                                "controls": ("shuffled", "rank"), "preset": None}  # fmt: skip


def test_a_preset_sets_draws_antithetic_maps_and_controls(script):
    assert protocol(script, "--preset", "standard") == {"draws": 1, "random_maps": 2, "antithetic": True,
                                                        "controls": ("shuffled", "rank"), "preset": "standard"}  # fmt: skip
    quick = protocol(script, "--preset", "quick")
    assert quick["controls"] == ("shuffled",) and quick["random_maps"] == 2


def test_explicit_options_override_the_preset(script):
    run = protocol(script, "--preset", "paper", "--draws", "2", "--random-maps", "3", "--controls", "none")
    assert run == {"draws": 2, "random_maps": 3, "antithetic": False, "controls": (), "preset": "paper"}
    assert protocol(script, "--preset", "standard", "--random-maps", "6")["antithetic"] is True


def test_the_shard_options_reach_the_config(script):
    args = ["--model", "m", "--out", "o", "--pis", "0.25,0.75", "--min-rho", "0.2", "--batch-size", "8",
            "--shard-index", "1", "--num-shards", "2", "--preset", "quick"]  # fmt: skip
    config = script.protocol(script.parse_args(args))
    assert config.metrics.pis == (0.25, 0.75) and config.metrics.batch_size == 8 and config.min_rho == 0.2
    assert (config.shard_index, config.num_shards, config.perturb) == (1, 2, "user_text")


def test_an_unknown_preset_is_refused_by_name(script, capsys):
    with pytest.raises(SystemExit):
        script.parse_args(["--model", "m", "--out", "o", "--preset", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err
