"""Every method on frozen parameters, and options that could not change a result are refused."""

from __future__ import annotations

import copy

import pytest
import torch

from gradellm_lens import InvalidInputError, Step, Target, get_method, list_methods, load_model
from gradellm_lens.methods import make_method


@pytest.fixture(scope="module")
def frozen_pair(tiny_hf, tiny_tokenizer):
    """The same weights twice: trainable, and frozen the way interpretability code does it."""
    trainable = load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu")
    frozen = load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu")
    frozen.requires_grad_(False)
    return trainable, frozen


@pytest.mark.parametrize("name", list_methods())
def test_every_method_works_on_a_frozen_model_and_leaves_it_frozen(frozen_pair, tiny_ids, name):
    trainable, frozen = frozen_pair
    steps = [Step(p, Target(int(tiny_ids[p + 1]))) for p in (4, 9)]
    options = {"n_steps": 4} if name == "integrated_gradients" else {}
    expected = make_method(name, trainable, **options).attribute(tiny_ids, steps)
    got = make_method(name, frozen, **options).attribute(tiny_ids, steps)
    torch.testing.assert_close(got.scores, expected.scores, equal_nan=True)
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in trainable.parameters())
    assert all(p.grad is None for model in frozen_pair for p in model.parameters())


def test_partly_frozen_model_keeps_its_flags(tiny_hf, tiny_tokenizer, tiny_ids):
    model = load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu")
    for name, param in model.named_parameters():
        param.requires_grad_("embed" in name or "blocks.1" in name)
    flags = [p.requires_grad for p in model.parameters()]
    steps = [Step(6, Target(int(tiny_ids[7])))]
    for name in ("grad_ellm", "attention_x_gradient", "saliency"):
        for path in ({}, {"gradient_path": "full_graph"}) if name != "saliency" else ({},):
            assert torch.isfinite(make_method(name, model, **path).attribute(tiny_ids, steps).scores[0, :7]).all()
    assert [p.requires_grad for p in model.parameters()] == flags


@pytest.mark.parametrize("name", [n for n in list_methods() if not get_method(n).signed])
def test_sign_is_refused_for_unsigned_methods(tiny_model, name):
    with pytest.raises(InvalidInputError, match=f"{name} gives unsigned scores.*input_x_gradient"):
        make_method(name, tiny_model, sign="raw")
    assert "sign" not in make_method(name, tiny_model).describe()


@pytest.mark.parametrize("name", [n for n in list_methods() if get_method(n).signed])
def test_signed_methods_record_their_sign(tiny_model, name):
    assert make_method(name, tiny_model).describe()["sign"] == "positive"
    assert make_method(name, tiny_model, sign="abs").describe()["sign"] == "abs"
    assert "sign" in get_method(name).option_names()


@pytest.mark.parametrize(
    "name,options,match",
    [
        ("input_x_gradient", {"sign": "postive"}, "Did you mean 'positive'"),
        ("occlusion", {"sign": 1}, "sign=1 is invalid"),
        ("grad_ellm", {"layers": [1.5]}, "layers must be an int K"),
        ("grad_ellm", {"layers": [True]}, "layers must be an int K"),
        ("attention_x_gradient", {"layers": ["1"]}, "layers must be an int K"),
        ("grad_ellm", {"share_forward": "no"}, "share_forward must be True or False"),
        ("grad_ellm", {"share_forward": 0}, "share_forward must be True or False"),
        ("grad_ellm", {"spatial": "loosend"}, "Did you mean 'loosened'"),
        ("grad_ellm", {"combine": 1}, "combine=1 is invalid"),
        ("attention_x_gradient", {"gradient_path": "full"}, "Did you mean 'full_graph'"),
    ],
)
def test_wrong_option_values_are_refused(tiny_model, name, options, match):
    with pytest.raises(InvalidInputError, match=match):
        make_method(name, tiny_model, **options)


def test_numpy_layer_indices_are_integers(tiny_model):
    import numpy as np

    assert make_method("grad_ellm", tiny_model, layers=[np.int64(1)]).layers == (1,)


def test_a_model_frozen_before_loading_loads_and_attributes(tiny_hf, tiny_tokenizer, tiny_ids):
    hf = copy.deepcopy(tiny_hf).requires_grad_(False)
    model = load_model(hf, tokenizer=tiny_tokenizer, device="cpu")  # the load-time capability probe runs a backward
    steps = [Step(6, Target(int(tiny_ids[7])))]
    for name in ("grad_ellm", "attention_x_gradient"):
        assert torch.isfinite(make_method(name, model).attribute(tiny_ids, steps).scores[0, :7]).all()
    assert not any(p.requires_grad for p in model.parameters())
