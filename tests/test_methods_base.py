"""The attribution-method contract, for every registered method: argument checks, NaN/inf
in the forward or backward pass, and no state left behind."""

from __future__ import annotations

import copy

import pytest
import torch
from faults import assert_same, backward_fault, interrupt, nan_at, nan_gradient, on_call, raise_in_hook, snapshot

import gradellm_lens as gl
from gradellm_lens import GradEllm, InvalidInputError, NumericalError, Step, Target
from gradellm_lens.methods import AttributionMethod, MethodOutput, list_methods, make_method
from gradellm_lens.numerics import prefix_mask


@pytest.mark.parametrize(
    "tokens,steps,match",
    [
        ("the cat", [Step(0, Target(1))], "must be a 1-D sequence .* got shape|encode text with"),
        (None, [Step(0, Target(1))], "got NoneType .encode text with gradellm_lens.encode_prompt"),
        ([1, 2, 3], Step(0, Target(1)), "steps must be a list of Step objects"),
        ([1, 2, 3], [1, 2], "steps must contain Step objects, got int"),
        ([1, 2, 3], [], "No steps to attribute"),
        ([1, 2, 3], [Step(3, Target(1))], "outside the sequence"),
    ],
)
def test_method_attribute_bad_arguments(tiny_model, tokens, steps, match):
    with pytest.raises(InvalidInputError, match=match):
        GradEllm(tiny_model).attribute(tokens, steps)


def test_method_returning_nan_scores_is_refused(tiny_model, tiny_ids):
    class Broken(AttributionMethod):
        def _attribute(self, tokens, steps):
            scores = torch.ones(len(steps), tokens.shape[0])
            scores[0, 1] = float("nan")
            return MethodOutput(scores=scores)

    Broken.method_name = "broken_for_test"  # set after class creation: not added to the registry
    assert "broken_for_test" not in gl.list_methods()
    with pytest.raises(NumericalError, match=r"broken_for_test.*NaN/inf.*step 0"):
        Broken(tiny_model).attribute(tiny_ids, [Step(4, Target(1))])


METHODS = list_methods()


GRADIENT_FREE = {"attention", "attention_rollout", "occlusion", "random", "uniform"}  # no backward pass at all


MODEL_FREE = {"random", "uniform"}


SMALL = {"integrated_gradients": {"n_steps": 6, "batch_size": 2}, "occlusion": {"batch_size": 3}}


POSITIONS = (3, 6, 9)


def _method(name, model, **options):
    return make_method(name, model, **{**SMALL.get(name, {}), **options})


def _steps(ids, positions=POSITIONS):
    return [Step(p, Target(int(ids[p + 1]))) for p in positions]


def _finite_inside(scores, steps) -> bool:
    return bool(torch.isfinite(scores[prefix_mask([s.position for s in steps], scores.shape[1])]).all())


def _same_scores(a, b) -> bool:
    return torch.equal(a.nan_to_num(-1.0), b.nan_to_num(-1.0))


@pytest.fixture(scope="module")
def ids(tiny_tokenizer):
    return torch.tensor(tiny_tokenizer("the cat sat on the mat because it was a good day").input_ids)


@pytest.fixture(scope="module")
def clean(tiny_model, ids):
    """Every method's scores on the unpoisoned model, on the path they take under an installed hook
    (the full graph and whole sequences: frozen-prefix passes never run with hooks), so they compare
    bit for bit."""
    whole = {"gradient_path": "full_graph", "share_head": False}
    out = {}
    for name in METHODS:
        path = {k: v for k, v in whole.items() if k in gl.get_method(name).option_names()}
        out[name] = _method(name, tiny_model, **path).attribute(ids, _steps(ids)).scores
    return out


FORWARD_FAULTS = {
    "NaN in the residual stream": ("blocks.0.hook_resid_post", nan_at()),
    "inf in the residual stream": ("blocks.0.hook_resid_post", lambda t, hook: t * float("inf")),
    "NaN inside the last step's prefix only": ("blocks.0.hook_resid_post", nan_at(slice(8, 9))),
    "NaN in the first layer's values": ("blocks.0.attn.hook_v", nan_at(slice(2, 3))),
}


BACKWARD_FAULTS = {
    "NaN gradient after the last layer": ("blocks.1.hook_resid_post", nan_gradient),
    "NaN gradient after the first layer": ("blocks.0.hook_resid_post", nan_gradient),
    "NaN gradient at the input embedding": ("blocks.0.hook_resid_pre", nan_gradient),
}


# where a method's gradient never passes the fault: Grad-ELLM's default reads every layer's hook_z and
# attention x gradient every layer's pattern (both above the input embedding)
UNREACHED = {
    ("grad_ellm", "NaN gradient at the input embedding"),
    ("attention_x_gradient", "NaN gradient at the input embedding"),
}


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("fault", FORWARD_FAULTS, ids=list(FORWARD_FAULTS))
def test_nan_in_the_forward_raises_numerical_error(tiny_model, ids, clean, name, fault):
    """A poisoned forward never gives NaN scores: model-based methods raise, the model-free baselines ignore it."""
    steps = _steps(ids)
    with tiny_model.hooks(fwd_hooks=[FORWARD_FAULTS[fault]]):
        if name in MODEL_FREE:
            assert _same_scores(_method(name, tiny_model).attribute(ids, steps).scores, clean[name])
        else:
            with pytest.raises(NumericalError, match="not finite|NaN/inf"):
                _method(name, tiny_model).attribute(ids, steps)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("fault", BACKWARD_FAULTS, ids=list(BACKWARD_FAULTS))
def test_nan_in_the_backward_raises_or_is_never_seen(tiny_model, ids, clean, name, fault):
    """A poisoned backward raises where the method's gradient passes through it; otherwise the
    forward is untouched and the scores are exactly the clean ones (never NaN inside a prefix)."""
    steps = _steps(ids)
    method = _method(name, tiny_model)
    unreached = name in GRADIENT_FREE or (name, fault) in UNREACHED
    with tiny_model.hooks(fwd_hooks=[BACKWARD_FAULTS[fault]]):
        if unreached:
            out = method.attribute(ids, steps)
            assert _finite_inside(out.scores, steps) and _same_scores(out.scores, clean[name])
        else:
            with pytest.raises(NumericalError, match="gradient at hook point .* contains NaN/inf"):
                method.attribute(ids, steps)


def _nan_rows_where(select):
    """A forward hook that makes the batch rows (and positions) where ``select(t)`` holds NaN."""

    def hook(tensor, hook=None):
        return tensor.masked_fill(select(tensor), float("nan"))  # (torch.where would poison the backward)

    return hook


def test_nan_in_one_perturbed_copy_is_not_averaged_away(tiny_model, ids):
    """Occlusion and integrated gradients batch perturbed copies: NaN in a single copy still raises."""
    steps = _steps(ids)
    occluded_at_4 = _nan_rows_where(lambda t: (t[:, 4:5] == 0).all(-1, keepdim=True))  # the copy zeroing position 4
    with (
        tiny_model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", occluded_at_4)]),
        pytest.raises(NumericalError, match="occlusion.*NaN/inf"),
    ):
        _method("occlusion", tiny_model).attribute(ids, steps)
    near_zero = _nan_rows_where(lambda t: t.norm(dim=-1, keepdim=True) < 0.05)  # only IG's smallest alphas
    with tiny_model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", near_zero)]):
        assert _finite_inside(_method("saliency", tiny_model).attribute(ids, steps).scores, steps)
        with pytest.raises(NumericalError, match="objective is not finite"):
            _method("integrated_gradients", tiny_model).attribute(ids, steps)


@pytest.fixture
def model(tiny_hf, tiny_tokenizer):
    """A fresh bridge per test: some leaks (e.g. transformers' lazily installed hooks) happen only once."""
    return gl.load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu")


def test_every_method_leaves_no_state(model, ids):
    """Successful calls of every method, directly and through explain, on a fresh bridge."""
    before = snapshot(model)
    for name in METHODS:
        _method(name, model).attribute(ids, _steps(ids))
        assert_same(before, snapshot(model), f"after {name}")
    for name in ("attention", "attention_x_gradient", "occlusion", "integrated_gradients"):
        gl.explain(model, "the cat sat", name, max_new_tokens=2, **SMALL.get(name, {}))
    with torch.no_grad():  # a caller's no_grad does not stop gradient methods, nor survive them
        _method("attention_x_gradient", model).attribute(ids, _steps(ids))
    assert_same(before, snapshot(model))


def _interruptions() -> dict:
    """(method, hook point, hook) per case; built per call because the call counters are stateful."""
    return {
        # occlusion: call 1 is the clean forward, then one forward per batch of occluded copies
        "occlusion, second batch's forward": ("occlusion", "blocks.0.hook_resid_post", on_call(3, interrupt)),
        # integrated gradients: one forward + backward per batch of interpolated inputs
        "integrated gradients, second batch's forward": (
            "integrated_gradients", "blocks.1.hook_resid_mid", on_call(2, interrupt)),
        "integrated gradients, second batch's backward": (
            "integrated_gradients", "blocks.1.hook_resid_post", on_call(2, backward_fault(interrupt))),
        "attention x gradient, backward": (
            "attention_x_gradient", "blocks.1.hook_resid_post", backward_fault(interrupt)),
        "attention, forward": ("attention", "blocks.1.hook_resid_pre", raise_in_hook(KeyboardInterrupt())),
        "saliency, error in a hook": ("saliency", "blocks.0.attn.hook_z", raise_in_hook(RuntimeError("injected"))),
    }  # fmt: skip


def test_interrupted_batches_leave_no_state_and_change_nothing(model, ids):
    """Ctrl-C (or an error) in the middle of a batched method: no state left, and rerunning gives
    bit-identical scores."""
    steps = _steps(ids)
    names = {name for name, _, _ in _interruptions().values()}
    expected = {name: _method(name, model).attribute(ids, steps).scores for name in names}
    before = snapshot(model)
    for description, (name, hook_name, hook) in _interruptions().items():
        method = _method(name, model)
        with pytest.raises((KeyboardInterrupt, RuntimeError)), model.hooks(fwd_hooks=[(hook_name, hook)]):
            method.attribute(ids, steps)
        assert_same(before, snapshot(model), f"after: {description}")
        assert _same_scores(method.attribute(ids, steps).scores, expected[name]), description
