"""Occlusion vs a naive per-token loop on the pristine HF model; batching; position-0 handling."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gradellm_lens import InvalidInputError, Step, Target, get_method

TOL = dict(atol=1e-5, rtol=1e-4)


def _steps(ids, positions):
    return [Step(p, Target(int(ids[p + 1]))) for p in positions]


@torch.no_grad()
def naive_occlusion(hf, ids, position, target, replacement_id=None):
    """One HF forward per occluded token of ``ids[: position + 1]``: ``y(x) - y(x with token i occluded)``."""
    prefix = ids[None, : position + 1]
    clean = hf(prefix).logits[0, position, target]
    drops = []
    for i in range(position + 1):
        if replacement_id is None:
            embeds = hf.model.embed_tokens(prefix).clone()
            embeds[0, i] = 0.0
            logits = hf(inputs_embeds=embeds).logits
        else:
            changed = prefix.clone()
            changed[0, i] = replacement_id
            logits = hf(changed).logits
        drops.append(clean - logits[0, position, target])
    return torch.stack(drops)


@pytest.mark.parametrize("replacement,replacement_id", [("zero", None), ("unk", 3), ("pad", 0), (17, 17)])
def test_matches_naive_loop(tiny_model, tiny_hf, tiny_ids, replacement, replacement_id):
    positions = [0, 5, len(tiny_ids) - 2]
    method = get_method("occlusion")(tiny_model, replacement=replacement, sign="raw", batch_size=5)
    out = method.attribute(tiny_ids, _steps(tiny_ids, positions))
    for row, p in enumerate(positions):
        ref = naive_occlusion(tiny_hf, tiny_ids, p, int(tiny_ids[p + 1]), replacement_id)
        torch.testing.assert_close(out.scores[row, : p + 1], ref, **TOL)
        assert torch.isnan(out.scores[row, p + 1 :]).all()


def test_batch_size_does_not_change_result(tiny_model, tiny_ids):
    steps = _steps(tiny_ids, [2, 6, 10])
    one = get_method("occlusion")(tiny_model, batch_size=1, sign="raw").attribute(tiny_ids, steps)
    many = get_method("occlusion")(tiny_model, batch_size=100, sign="raw").attribute(tiny_ids, steps)
    torch.testing.assert_close(one.scores, many.scores, equal_nan=True, atol=1e-6, rtol=1e-5)


def test_perturbations_run_batched(tiny_model, tiny_ids, monkeypatch):
    """11 occluded copies with batch_size=5 are 3 forward passes (5 + 5 + 1 rows), after the clean one;
    each batch runs only the positions from its first occluded one on (11, 6 and 1 of them)."""
    from gradellm_lens.methods import occlusion

    shapes = []
    real = occlusion.step_values

    def spy(model, tokens, *args, **kwargs):
        shapes.append(tuple(tokens.shape))
        return real(model, tokens, *args, **kwargs)

    monkeypatch.setattr(occlusion, "step_values", spy)
    out = get_method("occlusion")(tiny_model, batch_size=5).attribute(tiny_ids, _steps(tiny_ids, [10]))
    assert shapes == [(1, 11), (5, 11), (5, 6), (1, 1)]  # the longest prefix has 11 positions
    assert out.diagnostics["shared_head"] is True

    shapes.clear()
    whole = get_method("occlusion")(tiny_model, batch_size=5, share_head=False)
    whole = whole.attribute(tiny_ids, _steps(tiny_ids, [10]))
    assert shapes == [(1, 11), (5, 11), (5, 11), (1, 11)] and whole.diagnostics["shared_head"] is False


@pytest.mark.parametrize("replacement", ["zero", 17])
@pytest.mark.parametrize("first_position", ["occlude", "skip"])
def test_shared_head_matches_whole_copies(tiny_model, tiny_ids, replacement, first_position):
    """Running each batch over the clean head's keys/values gives the whole-copy scores, for steps
    before, inside and after a batch (a step before a batch's first position gets drop 0)."""
    steps = _steps(tiny_ids, [1, 4, 7, len(tiny_ids) - 2])
    options = {"replacement": replacement, "first_position": first_position, "sign": "raw", "batch_size": 3}
    shared = get_method("occlusion")(tiny_model, **options).attribute(tiny_ids, steps)
    whole = get_method("occlusion")(tiny_model, share_head=False, **options).attribute(tiny_ids, steps)
    assert shared.diagnostics["shared_head"] and not whole.diagnostics["shared_head"]
    torch.testing.assert_close(shared.scores, whole.scores, equal_nan=True, **TOL)


def test_shared_head_is_not_used_under_installed_hooks(tiny_model, tiny_ids):
    """An ablation installed around the call must see whole sequences: the method runs whole copies."""
    hook = ("blocks.0.hook_resid_post", lambda x, hook=None: x)
    with tiny_model.hooks(fwd_hooks=[hook]):
        out = get_method("occlusion")(tiny_model).attribute(tiny_ids, _steps(tiny_ids, [10]))
    assert out.diagnostics["shared_head"] is False


def test_skip_first_position(tiny_model, tiny_ids):
    steps = _steps(tiny_ids, [4, 9])
    full = get_method("occlusion")(tiny_model, sign="raw").attribute(tiny_ids, steps).scores
    skipped = get_method("occlusion")(tiny_model, sign="raw", first_position="skip").attribute(tiny_ids, steps).scores
    assert (skipped[:, 0] == 0).all() and (full[:, 0] != 0).all()
    torch.testing.assert_close(skipped[:, 1:], full[:, 1:], equal_nan=True)


@pytest.mark.parametrize(
    "options,match",
    [
        (dict(replacement="mask"), "replacement='mask' is invalid"),
        (dict(replacement=10**6), "outside the vocabulary"),
        (dict(batch_size=-2), "batch_size must be an integer >= 1"),
        (dict(first_position="keep"), "first_position='keep' is invalid"),
        ({"share_head": "yes"}, "share_head must be true or false"),
    ],
)
def test_bad_options(tiny_model, options, match):
    with pytest.raises(InvalidInputError, match=match):
        get_method("occlusion")(tiny_model, **options)


def test_missing_special_token_is_explained(tiny_model, monkeypatch):
    no_unk = SimpleNamespace(unk_token_id=None)
    monkeypatch.setattr(type(tiny_model), "tokenizer", property(lambda self: no_unk))
    with pytest.raises(InvalidInputError, match="no unk token"):
        get_method("occlusion")(tiny_model, replacement="unk")


@pytest.mark.slow
def test_matches_naive_loop_smollm2(smollm2, smollm2_hf):
    """On the real model, with the shared head (batches over the clean prefix's keys/values), against
    one plain HF forward per occluded token."""
    ids = torch.tensor(smollm2.tokenizer("The capital of France is Paris, and the capital of Italy is Rome").input_ids)
    positions = [5, len(ids) - 2]
    out = get_method("occlusion")(smollm2, sign="raw", batch_size=4).attribute(ids, _steps(ids, positions))
    assert out.diagnostics["shared_head"] is True
    for row, p in enumerate(positions):
        ref = naive_occlusion(smollm2_hf, ids, p, int(ids[p + 1]))
        torch.testing.assert_close(out.scores[row, : p + 1], ref, atol=2e-4, rtol=1e-3)
