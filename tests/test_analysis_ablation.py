"""Ablation hooks on the tiny random Llama (4 query heads, 2 KV heads, 2 layers)."""

from __future__ import annotations

import pytest
import torch

from gradellm_lens import InvalidInputError, Target
from gradellm_lens.analysis import (
    Ablation,
    ablated,
    ablated_continuation,
    ablation_effect,
    ablation_effects,
    ablation_hooks,
    collect_reference,
    continuation_agreement,
    hook_name,
    query_heads_of,
    record_activations,
    single_head_effects,
)
from gradellm_lens.attribute import greedy_continuation
from gradellm_lens.capture import hook_count

ALL_NAMES = [hook_name(kind, layer) for layer in (0, 1) for kind in ("z", "k", "v", "attn_out")]


@pytest.fixture(scope="module")
def prompts(tiny_tokenizer):
    texts = ["a dog ran to the park", "the mat was good", "it was a very good day for the cat", "the cat"]
    return [torch.tensor(tiny_tokenizer(t).input_ids) for t in texts]


@pytest.fixture(scope="module")
def reference(tiny_model, prompts):
    return collect_reference(tiny_model, prompts)


def _run(model, ids, ablation):
    before = hook_count(model)
    out = record_activations(model, ids, ALL_NAMES, fwd_hooks=ablation_hooks(model, ablation))
    assert hook_count(model) == before
    return out


@pytest.mark.parametrize("mode", ["zero", "mean", "resample"])
def test_query_head_ablation_touches_only_target_heads(tiny_model, tiny_ids, reference, mode):
    _, clean = record_activations(tiny_model, tiny_ids, ALL_NAMES)
    ablation = Ablation(heads=[(1, 2), (1, 0)], mode=mode, reference=reference, source=1)
    _, acts = _run(tiny_model, tiny_ids, ablation)
    z, z_clean = acts[hook_name("z", 1)][0], clean[hook_name("z", 1)][0]
    assert torch.equal(z[:, [1, 3]], z_clean[:, [1, 3]])  # other heads bit-identical
    for name in (hook_name("z", 0), hook_name("k", 1), hook_name("v", 1), hook_name("attn_out", 0)):
        assert torch.equal(acts[name], clean[name])  # nothing upstream changes
    n = z.shape[0]
    if mode == "zero":
        expected = torch.zeros_like(z[:, [0, 2]])
    elif mode == "mean":
        expected = reference.mean(hook_name("z", 1))[[0, 2]].expand(n, -1, -1)
    else:
        source = reference.sample(hook_name("z", 1), 1)  # 5 tokens; aligned, then its last position
        expected = source[torch.arange(n).clamp(max=source.shape[0] - 1)][:, [0, 2]]
    torch.testing.assert_close(z[:, [0, 2]], expected, rtol=0, atol=0)
    assert not torch.equal(acts[hook_name("attn_out", 1)], clean[hook_name("attn_out", 1)])


def test_mean_ablation_on_reference_set_keeps_the_mean(tiny_model, prompts, reference):
    name = hook_name("z", 0)
    ablation = Ablation(heads=[(0, 1)], mode="mean", reference=reference)
    ablated_z = [
        record_activations(tiny_model, p, [name], fwd_hooks=ablation_hooks(tiny_model, ablation))[1][name][0]
        for p in prompts
    ]
    mean = reference.mean(name)
    for z in ablated_z:
        assert torch.equal(z[:, 1], mean[1].expand_as(z[:, 1]))  # the ablated activation is the reference mean
    torch.testing.assert_close(torch.cat(ablated_z).mean(dim=0), mean, atol=1e-6, rtol=0)  # per-head mean unchanged


def test_reference_mean_is_over_all_positions(reference, prompts):
    name = hook_name("v", 1)
    stacked = torch.cat(reference.activations[name])
    assert stacked.shape[0] == sum(len(p) for p in prompts)
    torch.testing.assert_close(reference.mean(name), stacked.mean(dim=0))


def test_resample_random_positions_are_seeded_and_prefix_consistent(tiny_model, tiny_ids, reference):
    name = hook_name("z", 1)
    ablation = Ablation(heads=[(1, 3)], mode="resample", reference=reference, source=2, positions="random", seed=7)
    source = reference.sample(name, 2)
    full = _run(tiny_model, tiny_ids, ablation)[1][name][0, :, 3]
    short = _run(tiny_model, tiny_ids[:5], ablation)[1][name][0, :, 3]
    assert torch.equal(full[:5], short)
    for row in full:  # every position holds one of the source's positions
        assert any(torch.equal(row, s) for s in source[:, 3])
    other = _run(tiny_model, tiny_ids, Ablation(heads=[(1, 3)], mode="resample", reference=reference, source=2,
                                                positions="random", seed=8))[1][name][0, :, 3]  # fmt: skip
    assert not torch.equal(full, other)


def test_resample_source_drawn_from_seed(reference):
    drawn = {Ablation(heads=[(0, 0)], mode="resample", reference=reference, seed=s).source_index() for s in range(20)}
    assert drawn <= set(range(reference.n_prompts)) and len(drawn) > 1


@pytest.mark.parametrize("kv_head", [0, 1])
def test_kv_head_ablation_changes_exactly_its_query_group(tiny_model, tiny_ids, kv_head):
    _, clean = record_activations(tiny_model, tiny_ids, ALL_NAMES)
    _, acts = _run(tiny_model, tiny_ids, Ablation(kind="kv_heads", heads=[(1, kv_head)]))
    group = list(query_heads_of(kv_head, 4, 2))
    others = [h for h in range(4) if h not in group]
    z, z_clean = acts[hook_name("z", 1)][0], clean[hook_name("z", 1)][0]
    assert torch.equal(z[:, others], z_clean[:, others])
    assert (z[:, group] - z_clean[:, group]).abs().amax(dim=(0, 2)).min() > 0
    assert torch.equal(z[:, group], torch.zeros_like(z[:, group]))  # k = v = 0: uniform attention over zeros
    for part in ("k", "v"):
        kv = acts[hook_name(part, 1)][0]
        assert torch.equal(kv[:, kv_head], torch.zeros_like(kv[:, kv_head]))
        assert torch.equal(kv[:, 1 - kv_head], clean[hook_name(part, 1)][0][:, 1 - kv_head])


def test_kv_parts_k_only_leaves_values(tiny_model, tiny_ids, reference):
    _, clean = record_activations(tiny_model, tiny_ids, ALL_NAMES)
    _, acts = _run(
        tiny_model, tiny_ids, Ablation(kind="kv_heads", heads=[(0, 1)], kv_parts="k", mode="mean", reference=reference)
    )
    assert torch.equal(acts[hook_name("v", 0)], clean[hook_name("v", 0)])
    k = acts[hook_name("k", 0)][0, :, 1]
    assert torch.equal(k, reference.mean(hook_name("k", 0))[1].expand_as(k))


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_layer_ablation_replaces_attention_output(tiny_model, tiny_ids, reference, mode):
    _, clean = record_activations(tiny_model, tiny_ids, ALL_NAMES)
    _, acts = _run(tiny_model, tiny_ids, Ablation(kind="layers", layers=[0], mode=mode, reference=reference))
    out = acts[hook_name("attn_out", 0)][0]
    expected = torch.zeros(64) if mode == "zero" else reference.mean(hook_name("attn_out", 0))
    assert torch.equal(out, expected.expand_as(out))
    assert torch.equal(acts[hook_name("z", 0)], clean[hook_name("z", 0)])


def test_hooks_removed_after_error(tiny_model, tiny_ids):
    before = hook_count(tiny_model)
    with pytest.raises(RuntimeError, match="boom"), ablated(tiny_model, Ablation(heads=[(0, 0)])):
        assert hook_count(tiny_model) > before
        raise RuntimeError("boom")
    assert hook_count(tiny_model) == before


def test_ablation_applies_inside_generation(tiny_model, tiny_ids):
    prompt = tiny_ids[:6]
    ablation = Ablation(kind="layers", layers=[0, 1])
    before = hook_count(tiny_model)
    clean = greedy_continuation(tiny_model, prompt, 6, stop_at_eos=False)
    new = ablated_continuation(tiny_model, prompt, ablation, 6, stop_at_eos=False)
    assert hook_count(tiny_model) == before
    assert not torch.equal(clean, new)
    seq = torch.cat([prompt, new])
    with ablated(tiny_model, ablation), torch.no_grad():  # every token is the ablated model's argmax
        logits = tiny_model(seq[None])[0]
    assert torch.equal(logits[len(prompt) - 1 : -1].argmax(-1), new)
    assert continuation_agreement(clean, clean) == 1.0
    assert continuation_agreement(clean, new) < 1.0


def test_batched_row_ablations_match_single_runs(tiny_model, tiny_ids, reference):
    target = Target(int(tiny_ids[-1]))
    ablations = [
        Ablation(),
        Ablation(heads=[(0, 1)]),
        Ablation(heads=[(1, 3), (0, 2)], mode="mean", reference=reference),
        Ablation(kind="kv_heads", heads=[(1, 0)], mode="resample", reference=reference, source=0),
        Ablation(kind="layers", layers=[1]),
    ]
    batched = ablation_effects(tiny_model, tiny_ids, target, ablations, batch_size=3, choices=[5, 6, 7])
    for ablation, effect in zip(ablations, batched):
        single = ablation_effect(tiny_model, tiny_ids, target, ablation, choices=[5, 6, 7])
        assert effect.ablated_score == pytest.approx(single.ablated_score, abs=1e-5)
        assert effect.ablated_choice == single.ablated_choice
    assert batched[0].score_drop == pytest.approx(0.0, abs=1e-5)
    assert batched[0].clean_choice in (0, 1, 2)


def test_choice_groups_pick_the_label_with_the_best_token(tiny_model, tiny_ids):
    with torch.no_grad():
        logits = tiny_model(tiny_ids[None])[0, -1]
    best, worst = int(logits.argmax()), int(logits.argmin())
    effect = ablation_effect(tiny_model, tiny_ids, Target(best), Ablation(), choices=[[worst], [worst + 1, best]])
    assert effect.clean_choice == effect.ablated_choice == 1 and not effect.choice_changed
    with pytest.raises(InvalidInputError, match="two labels"):
        ablation_effect(tiny_model, tiny_ids, Target(best), Ablation(), choices=[[best]])


def test_effect_values_match_a_manual_forward(tiny_model, tiny_ids):
    target = Target(int(tiny_ids[-1]))
    ablation = Ablation(heads=[(1, 1)])
    effect = ablation_effect(tiny_model, tiny_ids, target, ablation)
    with torch.no_grad():
        clean = tiny_model(tiny_ids[None])[0, -1]
        with ablated(tiny_model, ablation):
            new = tiny_model(tiny_ids[None])[0, -1]
    assert effect.clean_score == pytest.approx(float(clean[target.token_id]), abs=1e-5)
    assert effect.ablated_score == pytest.approx(float(new[target.token_id]), abs=1e-5)
    assert effect.ablated_prob == pytest.approx(float(new.softmax(-1)[target.token_id]), abs=1e-6)
    assert effect.score_drop == pytest.approx(effect.clean_score - effect.ablated_score)


def test_single_head_effects(tiny_model, tiny_ids):
    target = Target(int(tiny_ids[-1]))
    importance = single_head_effects(tiny_model, tiny_ids, target, batch_size=3)
    assert importance.scores.shape == (2, 4) and importance.layers == (0, 1)
    for layer, head in [(0, 3), (1, 2)]:
        single = ablation_effect(tiny_model, tiny_ids, target, Ablation(heads=[(layer, head)]))
        assert importance[layer, head] == pytest.approx(single.score_drop, abs=1e-5)
    assert single_head_effects(tiny_model, tiny_ids, target, layers=[1]).layers == (1,)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mode": "average"}, "mode"),
        ({"mode": "mean", "heads": [(0, 0)]}, "reference"),
        ({"kind": "layers", "heads": [(0, 0)]}, "layers="),
        ({"heads": [(0, 0)], "layers": [1]}, "heads="),
        ({"heads": [("a", 0)]}, "pairs"),
    ],
)
def test_invalid_ablation_specs(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        Ablation(**kwargs)


@pytest.mark.parametrize(
    "ablation,match",
    [
        (Ablation(heads=[(0, 4)]), "query head 4"),
        (Ablation(kind="kv_heads", heads=[(0, 2)]), "KV head 2"),
        (Ablation(heads=[(5, 0)]), "Layer 5"),
    ],
)
def test_out_of_range_heads(tiny_model, ablation, match):
    with pytest.raises(InvalidInputError, match=match):
        ablation_hooks(tiny_model, ablation)


def test_reference_missing_hook_is_actionable(tiny_model, prompts):
    reference = collect_reference(tiny_model, prompts[:2], hooks=("z",), layers=[1])
    with pytest.raises(InvalidInputError, match="collect_reference"):
        ablation_hooks(tiny_model, Ablation(kind="layers", layers=[1], mode="mean", reference=reference))
    with pytest.raises(InvalidInputError, match="out of range"):
        ablation_hooks(tiny_model, Ablation(heads=[(1, 0)], mode="resample", reference=reference, source=5))


def test_ablation_effect_takes_text_as_explain_does(tiny_model):
    from gradellm_lens.encoding import encode_prompt

    ablation = Ablation(heads=[(0, 1)])
    by_text = ablation_effect(tiny_model, "the cat sat on the", " mat", ablation)
    mat = tiny_model.tokenizer(" mat", add_special_tokens=False)["input_ids"][0]
    by_ids = ablation_effect(tiny_model, encode_prompt(tiny_model, "the cat sat on the"), Target(mat), ablation)
    assert by_text == by_ids and ablation_effect(tiny_model, "the cat sat on the", mat, ablation) == by_ids
    with pytest.raises(InvalidInputError, match=r"tokens.*list.*encode_prompt\(model, text\)"):
        ablation_effect(tiny_model, ["the", "cat"], " mat", ablation)
