"""AttributionResult: frozen, save/load round trip (every field, NaN padding, layer_head), readable by plain numpy."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from gradellm_lens import AttributionResult, InvalidInputError, explain
from gradellm_lens.aggregate import merge_words, normalize

FIELDS = [f.name for f in dataclasses.fields(AttributionResult)]


def assert_same_result(a: AttributionResult, b: AttributionResult) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            assert x.dtype == y.dtype and x.shape == y.shape, name
            torch.testing.assert_close(x, y, equal_nan=True, atol=0, rtol=0, msg=name)
        else:
            assert x == y, name


@pytest.fixture(scope="module")
def contrast_result(tiny_model):
    return explain(tiny_model, "the movie was", continuation="very good", contrast="bad", layers="all")


def test_round_trip_with_layer_head_and_contrast(contrast_result, tmp_path):
    result = contrast_result
    assert result.layer_head is not None and torch.isnan(result.scores).any()
    assert set(result.contrast_ids) == {int(result.contrast_ids[0])}
    path = result.save(tmp_path / "run")  # ".npz" is appended
    assert path.name == "run.npz"
    assert_same_result(result, AttributionResult.load(path))


def test_round_trip_without_layer_head_and_after_aggregation(tiny_model, tmp_path):
    result = normalize(merge_words(explain(tiny_model, "the cat sat", "occlusion", target=" good")), "l1")
    assert result.layer_head is None and result.contrast_ids == (None,)
    assert result.options["aggregation"] == ["words:sum", "normalize:l1"]
    assert_same_result(result, AttributionResult.load(result.save(tmp_path / "occ.npz")))


def test_file_is_readable_with_numpy_alone(contrast_result, tmp_path):
    path = contrast_result.save(tmp_path / "plain.npz")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        assert meta["tokens"] == list(contrast_result.tokens) and meta["method"] == "grad_ellm"
        np.testing.assert_array_equal(data["scores"], contrast_result.scores.numpy())
        assert data["layer_head"].shape == tuple(contrast_result.layer_head.shape)
        assert (data["contrast_ids"] == contrast_result.contrast_ids[0]).all()


def test_result_is_frozen(contrast_result):
    with pytest.raises(dataclasses.FrozenInstanceError):
        contrast_result.method = "other"


def test_load_errors_name_the_file(contrast_result, tmp_path):
    with pytest.raises(InvalidInputError, match="No attribution file"):
        AttributionResult.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(InvalidInputError, match="junk.npz is not a gradellm-lens attribution file"):
        AttributionResult.load(junk)
    path = contrast_result.save(tmp_path / "old.npz")
    with np.load(path) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.asarray(json.dumps({**meta, "format_version": 99}))
    np.savez(path, **arrays)
    with pytest.raises(InvalidInputError, match="format version 99"):
        AttributionResult.load(path)
