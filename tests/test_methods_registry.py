"""The method registry, the per-method conventions, the random baseline and ``gradellm-lens methods``."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from gradellm_lens import InvalidInputError, Step, Target, get_method, list_methods
from gradellm_lens.cli.main import COMMANDS, main
from gradellm_lens.methods.base import AttributionMethod
from gradellm_lens.seeding import stable_seed

BASELINES = {
    "attention": False,
    "attention_rollout": False,
    "attention_x_gradient": False,
    "saliency": False,
    "input_x_gradient": True,
    "integrated_gradients": True,
    "occlusion": True,
    "random": False,
    "uniform": False,
}


def test_registry_lists_every_baseline():
    assert set(BASELINES) | {"grad_ellm"} <= set(list_methods())
    with pytest.raises(InvalidInputError, match="Did you mean 'attention_rollout'"):
        get_method("attention_rolout")


@pytest.mark.parametrize("name,signed", sorted(BASELINES.items()))
def test_method_conventions(name, signed):
    cls = get_method(name)
    assert issubclass(cls, AttributionMethod) and cls.method_name == name and cls.signed is signed
    options = cls.Options()
    assert dataclasses.is_dataclass(options) and cls.Options.__dataclass_params__.frozen
    for field in dataclasses.fields(options):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(options, field.name, field.default)
    formula = inspect.getdoc(inspect.getmodule(cls))
    assert ":math:" in formula, f"{name}: its module docstring states no formula"
    assert inspect.getdoc(cls).splitlines()[0]


def test_random_is_seeded_uniform(tiny_model, tiny_ids):
    steps = [Step(p, Target(int(tiny_ids[p + 1]))) for p in (3, 8)]
    a = get_method("random")(tiny_model, seed=3).attribute(tiny_ids, steps).scores
    b = get_method("random")(tiny_model, seed=3).attribute(tiny_ids, steps).scores
    c = get_method("random")(tiny_model, seed=4).attribute(tiny_ids, steps).scores
    assert torch.equal(a.nan_to_num(-1), b.nan_to_num(-1)) and not torch.equal(a.nan_to_num(-1), c.nan_to_num(-1))
    values = a[~torch.isnan(a)]
    assert values.numel() == 4 + 9 and ((values >= 0) & (values < 1)).all()
    # each step's row is drawn from a stable hash of (seed, sample, prefix, target)
    seed = stable_seed("random", 3, 0, tiny_ids[:9], steps[1].target.token_id)
    torch.testing.assert_close(a[1, :9], torch.rand(9, generator=torch.Generator().manual_seed(seed)))
    with pytest.raises(InvalidInputError, match=r"\bseed\b.*-1"):
        get_method("random")(tiny_model, seed=-1)


def test_methods_command_lists_methods_and_options(capsys):
    assert "methods" in COMMANDS
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in list_methods():
        assert f"\n{name} " in f"\n{out}"
    assert "    n_steps: int = 50  -- number of quadrature nodes" in out
    assert "    layers: 'last' | 'mean' = 'last'" in out
    assert "    replacement: 'zero' | 'pad' | 'unk' | int = 'zero'" in out
    assert "    sign: 'positive' | 'abs' | 'raw' = 'positive'" in out


def test_methods_command_shows_one_formula(capsys):
    assert main(["methods", "attention_rollout"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("attention_rollout ") and "Abnar & Zuidema" in out and "residual_weight" in out
    assert main(["methods", "attention_rolout"]) == 2
    assert "Did you mean 'attention_rollout'" in capsys.readouterr().err
