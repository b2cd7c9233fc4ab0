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
    """11 occluded copies with batch_size=5 are 3 forward passes (5 + 5 + 1 rows), after the clean one."""
    from gradellm_lens.methods import occlusion

    rows = []
    real = occlusion.step_values

    def spy(model, tokens, *args):
        rows.append(tokens.shape[0])
        return real(model, tokens, *args)

    monkeypatch.setattr(occlusion, "step_values", spy)
    get_method("occlusion")(tiny_model, batch_size=5).attribute(tiny_ids, _steps(tiny_ids, [10]))
    assert rows == [1, 5, 5, 1]  # the longest prefix has 11 positions


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
    ],
)
def test_bad_options(tiny_model, options, match):
    with pytest.raises(InvalidInputError, match=match):
        get_method("occlusion")(tiny_model, **options)


def test_missing_special_token_is_explained(tiny_model, monkeypatch):
    no_unk = SimpleNamespace(unk_token_id=None)
    monkeypatch.setattr(type(tiny_model), "tokenizer", property(lambda self: no_unk))
    with pytest.raises(InvalidInputError, match="this tokenizer has no unk token"):
        get_method("occlusion")(tiny_model, replacement="unk")
