"""The ablation API (ablations, their effects, head importance): no state left behind, NaN/inf,
and hostile input."""

from __future__ import annotations

import copy

import pytest
import torch
from faults import assert_same, backward_fault, interrupt, nan_at, on_call, raise_in_hook, snapshot

import gradellm_lens as gl
from gradellm_lens import InvalidInputError, NumericalError, Target
from gradellm_lens.analysis import (
    Ablation,
    AblationReference,
    ablated,
    ablated_continuation,
    ablation_curve,
    ablation_effect,
    ablation_effects,
    collect_reference,
    continuation_agreement,
    grad_ellm_head_importance,
    hook_name,
    output_norm_importance,
    record_activations,
    single_head_effects,
)
from gradellm_lens.attribute import greedy_continuation


@pytest.fixture
def model(tiny_hf, tiny_tokenizer):
    """A private bridge per test: failures must not poison the shared fixture."""
    return gl.load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu")


@pytest.fixture(scope="module")
def ids(tiny_tokenizer):
    return torch.tensor(tiny_tokenizer("the cat sat on the mat because it was a good day").input_ids)


@pytest.fixture(scope="module")
def reference(tiny_model, tiny_tokenizer):
    texts = ["a dog ran to the park", "the mat was good", "it was a very good day for the cat"]
    return collect_reference(tiny_model, [torch.tensor(tiny_tokenizer(t).input_ids) for t in texts])


def _ablations(reference) -> list[Ablation]:
    """One ablation of every kind and mode."""
    return [
        Ablation(heads=[(0, 1), (1, 3)]),
        Ablation(kind="kv_heads", heads=[(1, 0)], mode="mean", reference=reference),
        Ablation(kind="kv_heads", heads=[(0, 1)], kv_parts="v", mode="resample", reference=reference),
        Ablation(kind="layers", layers=[0], mode="resample", reference=reference, positions="random"),
    ]


def test_the_ablation_api_leaves_no_state(model, ids, reference):
    before = snapshot(model)
    target = Target(int(ids[-1]))
    ablations = _ablations(reference)
    collect_reference(model, [ids[:5], ids])
    ablation_effects(model, ids, target, ablations, batch_size=3, choices=[[4, 5], [6]])
    single_head_effects(model, ids, target, mode="mean", reference=reference, batch_size=3)
    ablation_curve(model, ids, target, [(1, 0), (0, 2), (1, 1)], counts=[0, 2, 3])
    ablated_continuation(model, ids[:5], ablations[2], 3, stop_at_eos=False)
    grad_ellm_head_importance(model, ids, target)
    output_norm_importance(model, ids)
    record_activations(model, ids, [hook_name("z", 1)])
    for ablation in ablations:
        with ablated(model, ablation):
            model(ids[None])
            gl.explain(model, "the cat sat", max_new_tokens=2, layers="all")  # gradients under an ablation
    assert_same(before, snapshot(model))


def test_interrupt_inside_an_ablated_block(model, ids, reference):
    """Ctrl-C in the body of ``with ablated(...)``, in one of its forward passes, or in a backward
    under it: the ablation hooks are gone afterwards and the logits are bit-identical."""
    before = snapshot(model)
    for ablation in _ablations(reference):
        with pytest.raises(KeyboardInterrupt), ablated(model, ablation):
            model(ids[None])
            raise KeyboardInterrupt
        assert_same(before, snapshot(model), f"body of {ablation}")
        forward_interrupt = [("blocks.1.hook_resid_pre", raise_in_hook(KeyboardInterrupt()))]
        with pytest.raises(KeyboardInterrupt), ablated(model, ablation), model.hooks(fwd_hooks=forward_interrupt):
            greedy_continuation(model, ids, 3)
        assert_same(before, snapshot(model), f"generation under {ablation}")
        backward_interrupt = [("blocks.1.hook_resid_post", backward_fault(interrupt))]
        with pytest.raises(KeyboardInterrupt), ablated(model, ablation), model.hooks(fwd_hooks=backward_interrupt):
            grad_ellm_head_importance(model, ids, Target(int(ids[-1])))
        assert_same(before, snapshot(model), f"backward under {ablation}")


def test_interrupt_inside_batched_ablation_effects(model, ids, reference):
    """Ctrl-C (or an error) in the 2nd ablated batch of ablation_effects, in single_head_effects, in an
    ablated generation step and in collect_reference: nothing is left behind, and the effects computed
    afterwards are identical to those before."""
    target = Target(int(ids[-1]))
    ablations = _ablations(reference)
    expected = ablation_effects(model, ids, target, ablations, batch_size=2)
    before = snapshot(model)
    calls = {  # description: (call, which forward pass fails; the first of ablation_effects is the clean one)
        "ablation_effects, 2nd batch": (lambda: ablation_effects(model, ids, target, ablations, batch_size=2), 3),
        "ablation_effect": (lambda: ablation_effect(model, ids, target, ablations[0]), 2),
        "single_head_effects, 2nd batch": (lambda: single_head_effects(model, ids, target, batch_size=3), 3),
        "ablated_continuation, 3rd token": (lambda: ablated_continuation(model, ids, ablations[1], 5), 3),
        "collect_reference, 2nd prompt": (lambda: collect_reference(model, [ids, ids[:4], ids[:6]]), 2),
    }
    for description, (call, nth) in calls.items():
        for exc in (KeyboardInterrupt, RuntimeError):

            def fail(tensor, exc=exc):
                raise exc("injected")

            with pytest.raises(exc), model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", on_call(nth, fail))]):
                call()
            assert_same(before, snapshot(model), f"after {exc.__name__} in {description}")
    assert ablation_effects(model, ids, target, ablations, batch_size=2) == expected


def test_nan_logits_raise_numerical_error(model, ids, reference):
    target = Target(int(ids[-1]))
    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", nan_at())]):
        with pytest.raises(NumericalError, match="NaN/inf.*without any ablation"):
            ablation_effect(model, ids, target, Ablation(heads=[(0, 0)]))
        with pytest.raises(NumericalError, match="NaN/inf"):
            single_head_effects(model, ids, target)
        with pytest.raises(NumericalError, match="hook_z.* NaN/inf"):
            output_norm_importance(model, ids)
        with pytest.raises(NumericalError):
            grad_ellm_head_importance(model, ids, target)
    # NaN from one ablation only (a mean reference holding NaN): the error names that ablation
    z = hook_name("z", 1)
    poisoned = AblationReference({z: (torch.full_like(reference.activations[z][0], float("nan")),)})
    ablations = [Ablation(heads=[(1, 0)]), Ablation(heads=[(1, 2)], mode="mean", reference=poisoned)]
    with pytest.raises(NumericalError, match=r"Ablation 1 \(Ablation\(kind='query_heads', heads=\(\(1, 2\),\)"):
        ablation_effects(model, ids, target, ablations, batch_size=1)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m, ids: ablation_effect(m, [1, 10**6], Target(3), Ablation()), "token id 1000000.*vocab"),
        (lambda m, ids: ablation_effect(m, [1, -3], Target(3), Ablation()), "token id -3.*vocabulary"),
        (lambda m, ids: ablation_effect(m, [1] * 129, Target(3), Ablation()), "129 tokens.*context"),
        (lambda m, ids: ablation_effect(m, [1.0, 2.0], Target(3), Ablation()), "non-empty integer ids"),
        (lambda m, ids: ablation_effect(m, [], Target(3), Ablation()), "non-empty integer ids"),
        (lambda m, ids: ablation_effect(m, ids, Target(10**6), Ablation()), "outside the model's vocabulary"),
        (lambda m, ids: ablation_effect(m, ids, Target(3), Ablation(), choices=[1]), "at least two labels"),
        (lambda m, ids: ablation_effect(m, ids, Target(3), Ablation(), choices=[1, 10**6]),
         "choice.*1000000.*vocabulary"),
        (lambda m, ids: ablation_effect(m, ids, Target(3), Ablation(), choices=[1, 2.5]),
         r"choice.*got 2\.5"),
        (lambda m, ids: ablation_effects(m, ids, Target(3), [Ablation()], batch_size=0), "batch_size must be"),
        (lambda m, ids: ablation_effects(m, ids, Target(3), [Ablation()], batch_size="x"),
         r"batch_size.*'x'"),
        (lambda m, ids: ablation_effects(m, ids, Target(3), [Ablation()], batch_size=2.0), "batch_size must be"),
        (lambda m, ids: ablation_effect(m, ids, [gl.Step(99, Target(3))], Ablation()), "position 99.*outside"),
        (lambda m, ids: Ablation(heads=[(0, 1.5)]), r"head.*got 1\.5"),
        (lambda m, ids: Ablation(heads=[(True, 1)]), r"layer.*got True"),
        (lambda m, ids: Ablation(heads=[(0, -1)]), r"head.*got -1"),
        (lambda m, ids: Ablation(heads="0,1"), r"heads must be \(layer, head\) pairs"),
        (lambda m, ids: Ablation(kind="layers", layers=[-1]), r"\blayers\b.*non-negative"),
        (lambda m, ids: Ablation(kind="layers", layers=3), "layers a list of ints"),
        (lambda m, ids: ablation_effect(m, ids, Target(3), Ablation(heads=[(0, 9)])), "query head 9 of layer 0"),
        (lambda m, ids: ablation_effect(m, ids, Target(3), Ablation(kind="layers", layers=[2])), "Layer 2 is out of"),
        (lambda m, ids: collect_reference(m, [[1, 10**6]]), "token id 1000000.*vocabulary"),
        (lambda m, ids: collect_reference(m, []), "reference set is empty"),
        (lambda m, ids: collect_reference(m, [ids], hooks=("q",)), "Unknown reference hook kind"),
        (lambda m, ids: output_norm_importance(m, [1, 10**6]), "token id 1000000.*vocabulary"),
        (lambda m, ids: record_activations(m, ids, ["blocks.7.attn.hook_z"]), "Unknown hook point 'blocks.7"),
        (lambda m, ids: ablated_continuation(m, ids, Ablation(), 0), r"max_new_tokens.*got 0\b"),
        (lambda m, ids: continuation_agreement(torch.tensor([]), ids), "reference continuation is empty"),
        (lambda m, ids: single_head_effects(m, ids, Target(3), layers=[5]), "Layer 5.*out of range"),
        (lambda m, ids: ablation_curve(m, ids, Target(3), [(0, 1)], counts=[2]), "Count 2 is outside 0..1"),
    ],
)  # fmt: skip
def test_hostile_input_to_the_analysis_api(tiny_model, ids, call, match):
    with pytest.raises(InvalidInputError, match=match):
        call(tiny_model, ids)
