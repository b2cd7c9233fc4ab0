"""Head importance from Grad-ELLM head maps, GQA aggregation, the output-norm baseline, curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradellm_lens import GradEllm, InvalidInputError, Step, Target, explain
from gradellm_lens.analysis import (
    Ablation,
    HeadImportance,
    ablation_curve,
    ablation_effect,
    ablation_hooks,
    aggregate_kv_groups,
    cumulative_ablations,
    curve_auc,
    dataset_head_importance,
    default_counts,
    grad_ellm_head_importance,
    head_importance,
    kv_head_of,
    output_norm_importance,
    query_heads_of,
    random_head_order,
)


@pytest.fixture
def result(tiny_model, tiny_ids):
    return explain(tiny_model, tiny_ids[:9], continuation=tiny_ids[9:].tolist(), layers="all")


def test_importance_shapes_and_measures(result):
    lh = result.layer_head  # [step, layer, head, pos], NaN after each prefix
    assert lh.shape[:3] == (3, 2, 4)
    c = lh.nan_to_num()
    expected = {
        "positive": c.clamp(min=0).sum(-1).mean(0),
        "abs": c.abs().sum(-1).mean(0),
        "net": c.sum(-1).mean(0),
        "net_abs": c.sum(-1).abs().mean(0),
    }
    for measure, value in expected.items():
        imp = head_importance(result, measure)
        assert imp.scores.shape == (2, 4) and imp.layers == (0, 1) and imp.measure == measure
        torch.testing.assert_close(imp.scores, value)
    assert head_importance(result, steps=[1]).scores.shape == (2, 4)
    torch.testing.assert_close(head_importance(result, steps=[1]).scores, c[1].clamp(min=0).sum(-1))


def test_positive_importance_bounds_the_layer_map(result):
    """Σ_h Σ_i ReLU(c_h,i) ≥ Σ_i ReLU(Σ_h c_h,i): the heads' positive mass covers the token scores."""
    imp = head_importance(result, "positive", steps=[0])
    token_mass = torch.nansum(result.scores[0])
    assert imp.scores.sum() >= token_mass - 1e-5


def test_importance_from_method_output_and_raw_tensor(tiny_model, tiny_ids, result):
    out = GradEllm(tiny_model, layers=[1]).attribute(tiny_ids, [Step(5, Target(int(tiny_ids[6])))])
    imp = head_importance(out)
    assert imp.layers == (1,) and imp.scores.shape == (1, 4)
    raw = head_importance(result.layer_head, layers=result.layers)
    torch.testing.assert_close(raw.scores, head_importance(result).scores)
    with pytest.raises(InvalidInputError, match="layers="):
        head_importance(result.layer_head)


def test_grad_ellm_head_importance_covers_all_layers(tiny_model, tiny_ids):
    target = Target(int(tiny_ids[-1]))
    imp = grad_ellm_head_importance(tiny_model, tiny_ids[:-1], target, "net_abs")
    assert imp.layers == (0, 1) and imp.measure == "net_abs"
    direct = head_importance(explain(tiny_model, tiny_ids[:-1], target=int(tiny_ids[-1]), layers="all"), "net_abs")
    torch.testing.assert_close(imp.scores, direct.scores)
    with pytest.raises(InvalidInputError, match="pre_o"):
        grad_ellm_head_importance(tiny_model, tiny_ids, target, variant="reference")


def test_post_o_maps_are_refused(tiny_model, tiny_ids):
    res = explain(tiny_model, tiny_ids[:6], target=int(tiny_ids[6]), variant="reference")
    with pytest.raises(InvalidInputError, match="post_o"):
        head_importance(res)


def test_unknown_measure(result):
    with pytest.raises(InvalidInputError, match="positive"):
        head_importance(result, "max")


def test_gqa_mapping_and_aggregation():
    assert [kv_head_of(h, 9, 3) for h in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # SmolLM2 layout
    assert query_heads_of(2, 9, 3) == (6, 7, 8)
    x = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 9)
    torch.testing.assert_close(aggregate_kv_groups(x, 3), torch.tensor([[3.0, 12, 21], [30, 39, 48]]))
    torch.testing.assert_close(aggregate_kv_groups(x, 3, "max"), torch.tensor([[2.0, 5, 8], [11, 14, 17]]))
    torch.testing.assert_close(aggregate_kv_groups(x, 3, "mean"), aggregate_kv_groups(x, 3) / 3)
    with pytest.raises(InvalidInputError, match="multiple"):
        aggregate_kv_groups(x, 4)
    with pytest.raises(InvalidInputError, match="out of range"):
        kv_head_of(9, 9, 3)


def test_to_kv_groups(result):
    imp = head_importance(result)
    grouped = imp.to_kv_groups(2)
    assert grouped.unit == "kv" and grouped.scores.shape == (2, 2)
    torch.testing.assert_close(grouped.scores[:, 0], imp.scores[:, :2].sum(-1))
    with pytest.raises(InvalidInputError, match="already"):
        grouped.to_kv_groups(1)


def test_ranking_and_rows():
    imp = HeadImportance(torch.tensor([[0.5, float("nan"), 2.0], [2.0, -1.0, 0.1]]), (3, 7), "positive")
    assert imp.ranking() == [(3, 2), (7, 0), (3, 0), (7, 2), (7, 1), (3, 1)]  # ties by index, NaN last
    assert imp.top(2) == [(3, 2), (7, 0)]
    assert imp[7, 1] == -1.0
    rows = {(r["layer"], r["head"]): r for r in imp.rows()}
    assert rows[3, 2]["rank"] == 1 and rows[3, 1]["rank"] == 6
    with pytest.raises(InvalidInputError, match="Layer 4"):
        imp[4, 0]
    with pytest.raises(InvalidInputError, match="rows"):
        HeadImportance(torch.zeros(2, 3), (0,), "x")


def test_dataset_importance_normalises_examples():
    a = HeadImportance(torch.tensor([[1.0, 3.0]]), (0,), "positive")
    b = HeadImportance(torch.tensor([[10.0, 10.0]]), (0,), "positive")
    torch.testing.assert_close(dataset_head_importance([a, b]).scores, torch.tensor([[0.375, 0.625]]))
    torch.testing.assert_close(dataset_head_importance([a, b], normalise=False).scores, torch.tensor([[5.5, 6.5]]))
    with pytest.raises(InvalidInputError, match="same layers"):
        dataset_head_importance([a, HeadImportance(torch.ones(1, 2), (1,), "positive")])


def test_output_norm_matches_hf_o_proj(tiny_model, tiny_hf, tiny_ids):
    imp = output_norm_importance(tiny_model, tiny_ids, positions=[4, 9])
    assert imp.scores.shape == (2, 4) and imp.measure == "output_norm"
    store = {}
    handles = [
        layer.self_attn.o_proj.register_forward_pre_hook(lambda m, a, i=i: store.__setitem__(i, a[0]))
        for i, layer in enumerate(tiny_hf.model.layers)
    ]
    try:
        with torch.no_grad():
            tiny_hf(tiny_ids[None])
    finally:
        for h in handles:
            h.remove()
    for layer in range(2):
        weight = tiny_hf.model.layers[layer].self_attn.o_proj.weight.detach()  # [d_model, H * d_head]
        for head in range(4):
            cols = slice(16 * head, 16 * (head + 1))
            norms = [(weight[:, cols] @ store[layer][0, p, cols]).norm() for p in (4, 9)]
            assert imp[layer, head] == pytest.approx(float(sum(norms) / 2), rel=1e-4)


def test_random_order_and_counts():
    order = random_head_order(3, 4, seed=1)
    assert sorted(order) == [(layer, h) for layer in range(3) for h in range(4)]
    assert order == random_head_order(3, 4, seed=1) and order != random_head_order(3, 4, seed=2)
    assert default_counts(12) == [0, 1, 2, 4, 8, 12]
    assert [a.heads for a in cumulative_ablations(order, [0, 2])] == [(), tuple(order[:2])]
    with pytest.raises(InvalidInputError, match="outside"):
        cumulative_ablations(order, [13])


def test_curve_auc():
    assert curve_auc([0, 0.5, 1.0], [0, 1, 1]) == pytest.approx(0.75)
    assert curve_auc([0, 1], [2, 2]) == pytest.approx(2.0)
    with pytest.raises(InvalidInputError, match="increasing"):
        curve_auc([0.5, 0.0], [1, 1])


def test_ablation_curve_points_match_single_ablations(tiny_model, tiny_ids):
    target = Target(int(tiny_ids[-1]))
    order = random_head_order(2, 4, seed=0)
    curve = ablation_curve(tiny_model, tiny_ids, target, order, batch_size=4)
    assert curve.counts == (0, 1, 2, 4, 8) and curve.fractions[-1] == 1.0
    assert curve.score_drops[0] == pytest.approx(0.0, abs=1e-5)
    single = ablation_effect(tiny_model, tiny_ids, target, Ablation(heads=order[:4]))
    assert curve.score_drops[3] == pytest.approx(single.score_drop, abs=1e-5)
    expected = float(np.sum(np.diff(curve.fractions) * (curve.score_drops[1:] + curve.score_drops[:-1]) / 2))
    assert curve.auc() == pytest.approx(expected)
    assert np.isfinite(curve.auc("prob"))


@pytest.mark.slow
def test_smollm2_gqa_heads_and_ablation(smollm2):
    """SmolLM2 (9 query heads, 3 KV heads, 30 layers): importance covers every head; a KV ablation hits its group."""
    from gradellm_lens import encode_prompt
    from gradellm_lens.analysis import hook_name, record_activations

    ids = encode_prompt(smollm2, "The capital of France is")
    target = Target(smollm2.to_single_token(" Paris"))
    importance = grad_ellm_head_importance(smollm2, ids, target)
    assert importance.scores.shape == (30, 9) and importance.layers == tuple(range(30))
    assert importance.to_kv_groups(3).scores.shape == (30, 3)
    effect = ablation_effect(smollm2, ids, target, Ablation(heads=importance.top(5)))
    assert np.isfinite(effect.score_drop)
    name = hook_name("z", 20)
    _, clean = record_activations(smollm2, ids, [name])
    _, acts = record_activations(
        smollm2, ids, [name], fwd_hooks=ablation_hooks(smollm2, Ablation(kind="kv_heads", heads=[(20, 1)]))
    )
    changed = (acts[name] - clean[name]).abs().amax(dim=(0, 1, 3)) > 0
    assert changed.tolist() == [h in query_heads_of(1, 9, 3) for h in range(9)]
