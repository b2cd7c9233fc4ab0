"""The evaluation protocol: random's K maps, per-method controls, conditioning (ρ), one step reference
per step, diagnostics; and the summary's statistics: paired bootstrap, protocol facts and warnings,
"n too small", DataFrames."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from evaldata import write_task_files

from gradellm_lens.attribute import build_steps
from gradellm_lens.evaluation import (
    EvaluationConfig,
    ResultsFile,
    RunHeader,
    bootstrap_ci,
    paired_bootstrap_ci,
    run_evaluation,
    summarize,
)
from gradellm_lens.viz import plots as plots_module
from gradellm_lens.evaluation import runner as runner_module
from gradellm_lens.evaluation.runner import shuffled_scores
from gradellm_lens.methods import make_method
from gradellm_lens.methods.base import MethodOutput
from gradellm_lens.methods.gradients import Saliency
from gradellm_lens.metrics import FaithfulnessConfig, evaluate_step, step_reference
from gradellm_lens.tasks import make_task

FAST = FaithfulnessConfig(pis=(0.3, 0.7), n_draws=1)
METRICS = ("soft_ns", "soft_nc", "auc_pi_ns", "auc_pi_nc", "mean_score")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_task_files(tmp_path_factory.mktemp("data"))


def evaluate(model, data_dir, out, methods, task="sst2", n=3, task_options=None, **config):
    config = {"perturb": "all", "metrics": FAST, "progress": False, **config}
    task = make_task(task, data_dir=data_dir, prompt_format="plain", **(task_options or {}))
    run_evaluation(model, task, methods, out, EvaluationConfig(n=n, **config))
    return [json.loads(line) for line in Path(out).read_text().splitlines() if '"kind": "result"' in line]


# ---- random's K maps and the controls -------------------------------------------------------------------


def test_random_is_the_mean_over_k_independent_maps_with_each_map_kept(tiny_model, data_dir, tmp_path):
    records = evaluate(tiny_model, data_dir, tmp_path / "r.jsonl", "random", random_maps=3)
    header = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert header["methods"]["random"]["config"]["random_maps"] == 3
    for r in records:
        assert r["random_maps"] == 3 and len(r["maps"]) == 3 and "controls" not in r
        step = r["steps"][0]
        assert len({m["auc_pi_nc"] for m in step["maps"]}) == 3  # three different maps
        for key in METRICS:
            assert step[key] == pytest.approx(np.mean([m[key] for m in step["maps"]]))
            assert r["mean"][key] == pytest.approx(np.mean([m[key] for m in r["maps"]]))
    summary = summarize([tmp_path / "r.jsonl"])
    assert summary.row("random").random_maps == 3 and "mean over 3 independent maps" in summary.describe_setup()


def test_controls_are_the_shuffled_and_rank_normalised_scores_under_the_same_masks(tiny_model, data_dir, tmp_path):
    records = evaluate(tiny_model, data_dir, tmp_path / "r.jsonl", "saliency,uniform", n=2)
    by_method = {(r["method"], r["example_id"]): r for r in records}
    assert all("controls" not in r for r in records if r["method"] == "uniform")
    task = make_task("sst2", data_dir=data_dir, prompt_format="plain")
    for example in task.load(2):
        record = by_method[("saliency", example.id)]
        sequence = torch.tensor(task.prompt(tiny_model, example).token_ids.tolist() + record["generated_ids"])
        steps = build_steps(record["prompt_tokens"], sequence)
        scores = make_method("saliency", tiny_model).attribute(sequence, steps).scores[0, : steps[0].position + 1]
        prefix = sequence[: steps[0].position + 1]
        reference = step_reference(tiny_model, prefix, steps[0].target)
        shuffled = shuffled_scores(scores, reference, FAST.seed)
        assert sorted(shuffled[1:].tolist()) == sorted(scores[1:].tolist()) and shuffled[0] == scores[0]
        expected = {
            "shuffled": evaluate_step(tiny_model, prefix, steps[0].target, shuffled, config=FAST),
            "rank": evaluate_step(tiny_model, prefix, steps[0].target, scores,
                                  config=FaithfulnessConfig(pis=(0.3, 0.7), n_draws=1, normalise="rank")),
        }  # fmt: skip
        for control, result in expected.items():
            assert record["steps"][0]["controls"][control]["auc_pi_nc"] == pytest.approx(result.auc_pi_nc, abs=1e-9)
            assert record["controls"][control]["auc_pi_ns"] == pytest.approx(result.auc_pi_ns, abs=1e-9)
    assert "controls" not in evaluate(tiny_model, data_dir, tmp_path / "n.jsonl", "saliency", n=1, controls=())[0]


def test_the_shuffle_permutes_only_perturbable_positions_and_is_seeded_by_the_step(tiny_model, tiny_ids):
    mask = torch.zeros(12, dtype=torch.bool)
    mask[4:9] = True
    reference = step_reference(tiny_model, tiny_ids[:12], 7, perturbable=mask)
    scores = torch.arange(12.0)
    shuffled = shuffled_scores(scores, reference, 0)
    assert torch.equal(shuffled[~mask], scores[~mask]) and not torch.equal(shuffled, scores)
    assert sorted(shuffled[mask].tolist()) == scores[mask].tolist()
    assert torch.equal(shuffled, shuffled_scores(scores, reference, 0))
    other = step_reference(tiny_model, tiny_ids[:12], 8, perturbable=mask)
    seeds = {tuple(shuffled_scores(scores, r, s).tolist()) for r in (reference, other) for s in (0, 1, 2)}
    assert len(seeds) > 1


def test_one_step_reference_per_step_shared_by_every_method_control_and_map(
    tiny_model, data_dir, tmp_path, monkeypatch
):
    calls = []
    real_reference, real_step = runner_module.step_reference, runner_module.evaluate_step

    def counting_reference(model, prefix, target, **kwargs):
        calls.append((tuple(prefix.tolist()), target.token_id))
        return real_reference(model, prefix, target, **kwargs)

    def needs_reference(*args, reference=None, **kwargs):
        assert reference is not None, "evaluate_step ran its own clean and all-masked forwards"
        return real_step(*args, reference=reference, **kwargs)

    monkeypatch.setattr(runner_module, "step_reference", counting_reference)
    monkeypatch.setattr(runner_module, "evaluate_step", needs_reference)
    records = evaluate(tiny_model, data_dir, tmp_path / "r.jsonl", "saliency,random,uniform", task="tellmewhy", n=2,
                       task_options={"max_new_tokens": 2}, random_maps=2)  # fmt: skip
    steps = {r["example_id"]: r["n_steps"] for r in records}
    assert len(calls) == len(set(calls)) == sum(steps.values())


def test_diagnostics_of_the_method_are_recorded(tiny_model, data_dir, tmp_path, monkeypatch):
    real = Saliency._attribute

    def with_diagnostics(self, tokens, steps):
        out = real(self, tokens, steps)
        return MethodOutput(out.scores, diagnostics={"gradient_path": "full_graph", "steps": len(steps)})

    monkeypatch.setattr(Saliency, "_attribute", with_diagnostics)
    records = evaluate(tiny_model, data_dir, tmp_path / "r.jsonl", "saliency", n=1)
    assert records[0]["diagnostics"] == {"gradient_path": "full_graph", "steps": 1}


# ---- conditioning --------------------------------------------------------------------------------------


def test_ill_conditioned_steps_are_flagged_counted_and_left_out_by_default(tiny_model, data_dir, tmp_path):
    n = 6
    every = evaluate(tiny_model, data_dir, tmp_path / "all.jsonl", "saliency", n=n, min_rho=0.0,
                     include_ill_conditioned=True, controls=())  # fmt: skip
    rho = {r["example_id"]: r["steps"][0]["rho"] for r in every}
    for r in every:  # p(ŷ|x), p(ŷ|x_∅) and ρ = (p - p∅)/p on every step
        s = r["steps"][0]
        assert s["rho"] == pytest.approx((s["full_prob"] - s["p_empty"]) / s["full_prob"])
    threshold = float(np.median(list(rho.values())))
    records = evaluate(tiny_model, data_dir, tmp_path / "t.jsonl", "saliency", n=n, min_rho=threshold, controls=())
    ill = {e for e, value in rho.items() if value < threshold}
    assert 0 < len(ill) < n
    for r in records:
        assert r["steps"][0]["ill_conditioned"] == (r["example_id"] in ill) == (r["status"] == "ill_conditioned")
        assert r["n_ill_conditioned"] == int(r["example_id"] in ill) and (r["mean"] is None) == (r["example_id"] in ill)
    summary = summarize([tmp_path / "t.jsonl"])
    row = summary.row("saliency")
    assert (row.n_ok, row.n_ill_conditioned, row.n_ill_conditioned_steps, row.n_steps) == (
        n - len(ill),
        len(ill),
        len(ill),
        n,
    )
    kept = [r["steps"][0]["auc_pi_nc"] for r in every if r["example_id"] not in ill]
    assert row.metrics["auc_pi_nc"].mean == pytest.approx(np.mean(kept))
    assert f"| {len(ill)}/{n} |" in summary.to_markdown()
    assert summary.protocol.n_ill_conditioned == len(ill) and summary.protocol.median_rho == pytest.approx(threshold)
    included = evaluate(tiny_model, data_dir, tmp_path / "i.jsonl", "saliency", n=n, min_rho=threshold,
                        include_ill_conditioned=True, controls=())  # fmt: skip
    assert all(r["status"] == "ok" for r in included)
    assert summarize([tmp_path / "i.jsonl"]).row("saliency").metrics["auc_pi_nc"].mean == pytest.approx(
        np.mean([r["steps"][0]["auc_pi_nc"] for r in every])
    )


# ---- statistics on synthetic results files ----------------------------------------------------------------


def synthetic_file(path, values, *, gold=None, predicted=None, rho=None, shuffled_offset=None, min_rho=0.1, task=None):
    """A results file with ``values[label][i]`` as every metric of example ``i`` (None: a failed pair)."""
    config = {"task": {"task": "sst2", "kind": "classification", "label_match": "first_token", "prompt_format": "plain",
                       **(task or {})},
              "model": {"name": "m"}, "metrics": {"pis": [0.3, 0.7], "n_draws": 1, "rescale": "scale_clip",
              "probability": "target"}, "perturb": "user_text",
              "conditioning": {"min_rho": min_rho, "include_ill_conditioned": False}}  # fmt: skip
    header = RunHeader(config, {label: {"method": label} for label in values})

    def metrics(v):
        return {**{k: v for k in METRICS}, "pi_ns": [v, v], "pi_nc": [v, v]}

    with ResultsFile(path, header) as store:
        for label, vals in values.items():
            for i, v in enumerate(vals):
                record = {"example_id": f"e{i}", "index": i, "method": label, "n_steps": 1, "pis": [0.3, 0.7],
                          "fingerprint": header.method_fingerprint(label), "status": "ok", "mean": metrics(v)}  # fmt: skip
                if gold is not None:
                    record["output"] = {"gold": gold[i], "predicted": predicted[i], "correct": gold[i] == predicted[i]}
                if rho is not None:
                    record["steps"] = [{"rho": rho[i], "ill_conditioned": rho[i] < min_rho}]
                    record["n_ill_conditioned"] = int(rho[i] < min_rho)
                if shuffled_offset is not None and label != "random":
                    record["controls"] = {"shuffled": metrics(v - shuffled_offset)}
                if v is None:
                    record.update(status="failed", error="NumericalError: injected", mean=None)
                store.append(record)
    return path


def test_paired_bootstrap_pairs_by_example():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 40)  # large between-example spread, shared by both methods
    a = {f"e{i}": float(v + 0.03 + rng.normal(0, 0.01)) for i, v in enumerate(base)}
    b = {f"e{i}": float(v) for i, v in enumerate(base)}
    b["only-b"] = 0.5  # an example only one method finished is not paired
    paired = paired_bootstrap_ci(a, b, n_boot=2000)
    shared = [e for e in a if e in b]
    reference = bootstrap_ci([a[e] - b[e] for e in shared], n_boot=2000)
    assert paired == reference and paired.n == 40 and paired.low > 0  # the paired CI sees the shift
    marginal_a, marginal_b = bootstrap_ci(list(a.values())), bootstrap_ci([b[e] for e in shared])
    assert marginal_a.low < marginal_b.high  # the marginal CIs overlap: they cannot tell the two apart
    assert paired.high - paired.low < (marginal_a.high - marginal_a.low) / 5
    assert paired_bootstrap_ci({"x": 1.0}, {"y": 1.0}) is None


def test_summary_compares_methods_with_random_their_shuffled_control_and_each_other(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.6, 8)
    plain = "plain+layers=[0,1]"  # brackets in a label do not make it a control
    values = {"good": list(base + 0.2), plain: list(base + 0.01 * rng.normal(size=8)), "random": list(base)}
    path = synthetic_file(tmp_path / "r.jsonl", values, shuffled_offset=0.15)
    summary = summarize([path], n_boot=2000)
    assert [m.label for m in summary.methods] == ["good", "good [shuffled]", plain, f"{plain} [shuffled]", "random"]
    pairs = {(c.a, c.b) for c in summary.comparisons}
    assert pairs == {
        *((a, "random") for a in ("good", "good [shuffled]", plain, f"{plain} [shuffled]")),
        ("good", "good [shuffled]"), (plain, f"{plain} [shuffled]"), ("good", plain),
    }  # fmt: skip
    good = summary.comparison("good", "random").deltas["auc_pi_nc"]
    assert good.mean == pytest.approx(0.2) and good.excludes_zero()
    assert not summary.comparison(plain, "random").deltas["auc_pi_nc"].excludes_zero()
    assert [c.kind for c in summary.comparisons].count("pair") == 1
    report = summary.to_report()
    assert "Paired differences, vs random" in report and "Paired differences, vs its shuffled control" in report
    assert "| good | random | 8 | 0.200 [0.200, 0.200] * |" in report
    paired = summary.to_dataframe("paired")
    assert set(paired.columns) == {"a", "b", "metric", "mean", "ci_low", "ci_high", "n"} and len(paired) == 14
    # fewer than 5 shared examples: the difference, no interval
    small = summarize([synthetic_file(tmp_path / "s.jsonl", {"a": [0.5, 0.6, 0.7], "random": [0.1, 0.2, 0.1]})])
    assert small.comparison("a", "random").cell("auc_pi_ns") == "0.467 (n too small)"
    assert "| a | random | 3 | 0.467 (n too small) |" in small.to_report()
    row = small.to_dataframe("paired").iloc[0]
    assert np.isnan(row["ci_low"]) and np.isnan(row["ci_high"]) and row["n"] == 3


def test_the_report_opens_with_one_verdict_per_method(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.6, 8)
    values = {"good": list(base + 0.2), "plain": list(base + 0.01 * rng.normal(size=8)), "random": list(base)}
    report = summarize([synthetic_file(tmp_path / "r.jsonl", values, shuffled_offset=0.15)], n_boot=500).to_report()
    lines = report.splitlines()
    assert lines[0] == "## sst2 · m" and lines[2].startswith("Verdict: Δ = method − B on π-Soft-NS AUC / π-Soft-NC")
    verdicts = [line for line in lines if line.startswith("- **")]
    assert len(verdicts) == 2 and report.index(verdicts[-1]) < report.index("| method |")  # before the table
    assert verdicts[0] == (
        "- **good** (n = 8): beats random (Δ +0.200 [+0.200, +0.200] / +0.200 [+0.200, +0.200]); "
        "beats its shuffled control (Δ +0.150 [+0.150, +0.150] / +0.150 [+0.150, +0.150])."
    )
    assert verdicts[1].startswith("- **plain** (n = 8): does not beat random (Δ ")
    assert "beats its shuffled" in verdicts[1]
    few = summarize([synthetic_file(tmp_path / "f.jsonl", {"a": [0.5, 0.6], "random": [0.1, 0.2]})]).to_report()
    assert "- **a** (n = 2): too few examples to tell against random (Δ +0.400 / +0.400)." in few


def test_bold_marks_the_best_method_never_a_control_or_baseline_and_own_data_is_titled_by_its_file(tmp_path):
    n = 6
    values = {"m": [0.3] * n, "uniform": [0.6] * n, "random": [0.1] * n}
    own = {"task": "jsonl", "data": {"file": "reviews.jsonl", "sha256": "x"}}
    summary = summarize([synthetic_file(tmp_path / "r.jsonl", values, shuffled_offset=-0.4, task=own)])
    table = summary.to_markdown().splitlines()
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table[2:]}
    assert rows["m"].count("**0.300**") == 4  # the four faithfulness metrics
    assert "**" not in rows["m [shuffled]"] + rows["uniform"] + rows["random"]  # 0.7 and 0.6 are references
    assert summary.title == "reviews.jsonl · m" and summary.to_report().startswith("## reviews.jsonl · m\n")


def test_protocol_states_accuracy_majority_labels_and_rho_and_warns_when_the_text_is_not_read(tmp_path):
    n = 10
    gold = ["positive"] * 6 + ["negative"] * 4
    always = ["positive"] * n  # one label for everything: accuracy = majority rate
    lazy = summarize([synthetic_file(tmp_path / "a.jsonl", {"m": [0.5] * n}, gold=gold, predicted=always,
                                     rho=[0.02] * 8 + [0.5, 0.5])])  # fmt: skip
    p = lazy.protocol
    assert p.accuracy.mean == pytest.approx(0.6) and p.majority_rate == pytest.approx(0.6)
    assert p.label_shares == {"positive": 1.0} and p.median_rho == pytest.approx(0.02) and p.n_ill_conditioned == 8
    warning = p.warning()
    assert warning.startswith("Warning: the model does not depend on the text (median ρ 0.020 is below 0.1: ")
    assert len(warning.splitlines()) == 1
    for reason in ("it answers 'positive' for 100% of the examples", "accuracy 0.600 is not above the majority rate"):
        assert reason in warning
    assert warning in lazy.to_report() and "ill-conditioned steps 8/10 (ρ < 0.1)" in lazy.to_report()
    # ρ says the model reads the text, but its answer is constant: the warning agrees with ρ and shows it
    constant = summarize([synthetic_file(tmp_path / "c.jsonl", {"m": [0.5] * n}, gold=gold, predicted=always,
                                         rho=[0.5] * n)]).protocol.warning()  # fmt: skip
    assert constant == (
        "Warning: the model's answer does not follow the text (it answers 'positive' for 100% of the examples; "
        "accuracy 0.600 is not above the majority rate 0.600; median ρ 0.500 ≥ 0.1: masking the text does move p(ŷ))."
    )
    nothing = summarize([synthetic_file(tmp_path / "d.jsonl", {"m": [0.5] * n}, gold=gold, predicted=[None] * n,
                                        rho=[-1.0] * n)]).protocol.warning()  # fmt: skip
    assert nothing.startswith("Warning: the model does not depend on the text (median ρ -1.000 is below 0.1: masking ")
    assert "its answer is none of the label words for 100% of the examples" in nothing
    reader = summarize([synthetic_file(tmp_path / "b.jsonl", {"m": [0.5] * n}, gold=gold,
                                       predicted=gold[:-1] + ["positive"], rho=[0.4] * n)])  # fmt: skip
    assert reader.protocol.warning() is None and reader.protocol.label_shares == {"positive": 0.7, "negative": 0.3}
    assert "Warning" not in reader.to_report()
    frame = reader.to_dataframe()
    facts = frame[frame["method"] == "(task)"].set_index("metric")["mean"]
    assert facts["accuracy"] == pytest.approx(0.9) and facts["majority_rate"] == pytest.approx(0.6)
    assert facts["predicted_share:negative"] == pytest.approx(0.3) and facts["median_rho"] == pytest.approx(0.4)
    assert list(frame.columns) == ["method", "metric", "mean", "ci_low", "ci_high", "n"]
    assert frame["mean"].dtype == np.float64


def test_plots_take_plain_curves_and_do_not_import_the_evaluation():
    tree = ast.parse(inspect.getsource(plots_module))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(module and ("summary" in module or "evaluation" in module) for module in imported)
