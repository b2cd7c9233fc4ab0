"""Run presets (resolved, recorded, overridden), the variance decomposition on data with known
components, and the antithetic random baseline (still uniformly random rankings)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from evaldata import write_task_files
from test_baselines import _map

from gradellm_lens.cli.main import main
from gradellm_lens.errors import InvalidInputError
from gradellm_lens.evaluation import EvaluationConfig, read_results, run_evaluation
from gradellm_lens.evaluation.antithetic import independent_maps, with_reflections
from gradellm_lens.evaluation.presets import PRESETS, get_preset, list_presets
from gradellm_lens.evaluation.runner import explicit_map_options, preset_config, run_header
from gradellm_lens.evaluation.variance import Components, allocations, best_allocation, crossed_components
from gradellm_lens.methods import make_method
from gradellm_lens.metrics import FaithfulnessConfig
from gradellm_lens.tasks import make_task


@pytest.fixture
def data_dir(tmp_path):
    return write_task_files(tmp_path / "data")


# ---- presets -----------------------------------------------------------------------------------------


def test_presets_resolve_to_configs_and_unknown_names_are_refused():
    assert list_presets() == ["quick", "standard", "paper"]
    for name in list_presets():
        preset = get_preset(name)
        config = preset_config(name)
        assert config.preset == name and config.random_maps == preset.random_maps and config.n == preset.n
        assert config.metrics.n_draws == preset.n_draws and config.metrics.pis == preset.pis
        assert config.antithetic == preset.antithetic and config.controls == preset.controls
        assert preset.description
    with pytest.raises(InvalidInputError, match="Unknown preset 'standrd'.*standard"):
        get_preset("standrd")
    with pytest.raises(InvalidInputError, match="Unknown preset"):
        EvaluationConfig(preset="fast")


def test_explicit_options_override_a_preset():
    config = preset_config("standard", metrics={"n_draws": 7, "batch_size": 8}, n=3, random_maps=6, controls=())
    assert (config.n, config.random_maps, config.controls, config.antithetic) == (3, 6, (), True)
    assert config.metrics.n_draws == 7 and config.metrics.batch_size == 8
    assert config.metrics.pis == PRESETS["standard"].pis and config.preset == "standard"
    with pytest.raises(InvalidInputError, match=r"random_maps.*even.*got 3\b"):
        preset_config("quick", random_maps=3)


def test_no_preset_leaves_the_defaults_under_the_options():
    assert preset_config(None) == EvaluationConfig()
    config = preset_config(None, metrics={"n_draws": 3}, random_maps=4)
    assert config == EvaluationConfig(metrics=FaithfulnessConfig(n_draws=3), random_maps=4) and config.preset is None


def test_an_odd_explicit_map_count_asks_for_independent_maps():
    assert explicit_map_options(None) == {}
    assert explicit_map_options(6) == {"random_maps": 6}  # a preset's pairs stay
    assert explicit_map_options(3) == {"random_maps": 3, "antithetic": False}
    assert explicit_map_options(None, antithetic=True) == {"antithetic": True}
    config = preset_config("quick", **explicit_map_options(3))
    assert (config.random_maps, config.antithetic) == (3, False)
    with pytest.raises(InvalidInputError, match=r"random_maps.*even.*got 3\b"):
        preset_config("quick", **explicit_map_options(3, antithetic=True))


def test_the_preset_is_recorded_in_the_header_and_only_when_used(tiny_model, data_dir, tmp_path):
    task = make_task("sst2", data_dir=data_dir)
    methods = {"random": make_method("random", tiny_model)}
    plain = run_header(tiny_model, task, methods, EvaluationConfig())
    assert "preset" not in plain.config and plain.methods["random"] == {
        "method": "random", "seed": 0, "sample": 0, "random_maps": 10,
    }  # fmt: skip  # the fields (hence the fingerprints) of a run without a preset are unchanged
    with_preset = run_header(tiny_model, task, methods, preset_config("quick"))
    assert with_preset.config["preset"] == "quick" and with_preset.methods["random"]["antithetic"] is True
    assert with_preset.config_fingerprint != plain.config_fingerprint
    # the run_evaluation API takes a preset's name
    out = tmp_path / "run" / "results.jsonl"
    config = preset_config("quick", n=2, perturb="all", progress=False, metrics={"pis": (0.3, 0.7)})
    report = run_evaluation(tiny_model, task, "saliency,random", out, config)
    assert report.written == 4
    headers, records, _partial = read_results(out)
    assert headers[0]["config"]["preset"] == "quick" and headers[0]["config"]["metrics"]["n_draws"] == 1
    assert [r["random_maps"] for r in records if r["method"] == "random"] == [2, 2]


def test_cli_preset_with_an_explicit_override(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["evaluate", "--task", "sst2", "--model", "tiny-llama", "--device", "cpu", "--no-progress", "--perturb",
            "all", "--methods", "saliency,random", "--data-dir", str(data_dir), "--out-dir", str(out),
            "--preset", "quick", "--n", "2", "--pis", "0.5", "--random-maps", "4"]  # fmt: skip
    assert main(argv) == 0
    header = out.joinpath("results.jsonl").read_text().splitlines()[0]
    assert '"preset": "quick"' in header and '"random_maps": 4' in header and '"antithetic": true' in header
    assert '"n_draws": 1' in header and '"pis": [0.5]' in header
    capsys.readouterr()
    odd = [*argv[:-6], "--n", "2", "--random-maps", "3"]
    assert main([*odd, "--antithetic", "--out-dir", str(tmp_path / "odd")]) == 2  # pairs asked for explicitly
    assert "random_maps must be even" in capsys.readouterr().err
    assert main([*odd, "--out-dir", str(tmp_path / "odd")]) == 0  # the preset's pairs give way to an odd count
    header = tmp_path.joinpath("odd", "results.jsonl").read_text().splitlines()[0]
    assert '"random_maps": 3' in header and '"antithetic": true' not in header


# ---- variance decomposition --------------------------------------------------------------------------


def synthetic(rng, n_e, n_k, n_d, example, unit, draw, residual):
    a = rng.normal(0, math.sqrt(example), (n_e, 1, 1))
    b = rng.normal(0, math.sqrt(unit), (n_e, n_k, 1))
    c = rng.normal(0, math.sqrt(draw), (n_e, 1, n_d))
    e = rng.normal(0, math.sqrt(residual), (n_e, n_k, n_d))
    return 0.5 + a + b + c + e


def test_the_decomposition_recovers_known_components():
    rng = np.random.default_rng(0)
    truth = {"example": 0.04, "unit": 0.01, "draw": 0.005, "residual": 0.002}
    got = crossed_components(synthetic(rng, 3000, 4, 3, **truth))
    for name, value in truth.items():
        assert getattr(got, name) == pytest.approx(value, rel=0.1), name
    assert got.n_examples == 3000 and got.mean == pytest.approx(0.5, abs=0.01)
    # the per-example variance of the estimate matches the empirical variance of example means
    sample = synthetic(rng, 4000, 2, 1, **truth)
    assert sample.mean(axis=(1, 2)).var(ddof=1) == pytest.approx(
        Components(**truth, n_examples=0).variance(draws=1, units=2), rel=0.08
    )
    shares = got.shares(3, 4)
    assert sum(shares.values()) == pytest.approx(1.0)
    # one map: the draw component holds everything within an example
    single = crossed_components(synthetic(rng, 3000, 1, 4, **truth))
    assert single.unit == 0 and single.residual == 0
    assert single.draw == pytest.approx(truth["draw"] + truth["residual"], rel=0.15)
    with pytest.raises(InvalidInputError, match="example, map, draw"):
        crossed_components(np.zeros((3, 2)))


def test_the_allocation_minimises_variance_times_cost():
    comps = Components(example=1.0, unit=0.5, draw=0.2, residual=0.0, n_examples=10)

    def cost(d, k):
        return 1.0 + 0.1 * d * (3 + k)

    grid = allocations(comps, cost, range(1, 6), range(1, 11), budget_s=100.0)
    best = best_allocation(comps, cost, range(1, 6), range(1, 11))
    brute = min(itertools.product(range(1, 6), range(1, 11)), key=lambda dk: comps.variance(*dk) * cost(*dk))
    assert (best.draws, best.units) == brute == (grid[0].draws, grid[0].units)
    assert grid[0].half_width == pytest.approx(
        1.959963984540054 * math.sqrt(comps.variance(*brute) * cost(*brute) / 100)
    )
    assert grid[0].examples == pytest.approx(100 / cost(*brute))


# ---- antithetic random maps --------------------------------------------------------------------------


def test_antithetic_maps_are_reflections_and_pairs_are_counted():
    rows = [torch.tensor([0.1, 0.7, 0.4]), torch.tensor([0.9, 0.2, 0.5])]
    out = with_reflections(rows)
    assert len(out) == 4 and torch.allclose(out[1], torch.tensor([0.9, 0.3, 0.6])) and out[2] is rows[1]
    assert independent_maps(6, True) == 3 and independent_maps(5, False) == 5
    with pytest.raises(InvalidInputError, match="must be even"):
        independent_maps(3, True)


def test_antithetic_random_rankings_stay_uniformly_random(tiny_model, tiny_ids):
    """Over many steps, the ranking of a reflected map is uniform over all orderings (chi-square over the
    24 rankings of 4 tokens), as the independent maps' is; each reflected map reverses its partner's ranking."""
    counts = {"original": np.zeros(24), "reflected": np.zeros(24)}
    index = {perm: i for i, perm in enumerate(itertools.permutations(range(4)))}
    n = 2400
    for target in range(n):
        s = _map(tiny_model, tiny_ids, 3, target % 64, sample=target // 64)
        original, reflected = with_reflections([s])
        rank_o, rank_r = tuple(original.argsort().tolist()), tuple(reflected.argsort().tolist())
        assert rank_r == rank_o[::-1]
        counts["original"][index[rank_o]] += 1
        counts["reflected"][index[rank_r]] += 1
    for name, c in counts.items():
        expected = n / 24
        chi2 = ((c - expected) ** 2 / expected).sum()
        assert chi2 < 41.6, name  # the 1% critical value of chi-square with 23 degrees of freedom
        assert c.min() > 0


def test_antithetic_random_baseline_in_a_run(tiny_model, data_dir, tmp_path):
    out = tmp_path / "results.jsonl"
    config = EvaluationConfig(n=2, perturb="all", progress=False, random_maps=4, antithetic=True,
                              metrics=FaithfulnessConfig(pis=(0.3, 0.7), n_draws=1))  # fmt: skip
    run_evaluation(tiny_model, make_task("sst2", data_dir=data_dir), "random", out, config)
    headers, records, _partial = read_results(out)
    assert headers[0]["methods"]["random"]["config"]["antithetic"] is True
    for record in records:
        assert record["random_maps"] == 4 and len(record["maps"]) == 4
        step = record["steps"][0]
        assert len(step["maps"]) == 4
        # the mean over the maps is what the line reports
        assert record["mean"]["auc_pi_ns"] == pytest.approx(np.mean([m["auc_pi_ns"] for m in step["maps"]]))
        # a map and its reflection: mean scores s and 1 - s average to one half
        assert step["maps"][0]["mean_score"] + step["maps"][1]["mean_score"] == pytest.approx(1.0, abs=1e-6)
