"""Hostile inputs and numerical safety for the core API.

Every public entry point of the core (``load_model``, ``encode_prompt``, ``explain``, methods and
their registry, ``Target``/``Step``, ``AttributionResult``, the ``explain``/``demo`` commands) is fed
bad input and must either return a documented result or raise a :class:`LensError` whose message
names the problem -- never a deep torch error, never NaN where numbers are expected.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
import torch
from faults import backward_fault, nan_at, nan_gradient, nan_where_used

import gradellm_lens as gl
from gradellm_lens import AttributionResult, GradEllm, InvalidInputError, NumericalError, Step, Target
from gradellm_lens.attribute import encode_prompt
from gradellm_lens.capture import capture_gradients
from gradellm_lens.cli.main import main
from gradellm_lens.errors import FlatAttributionWarning, LensError
from gradellm_lens.methods import AttributionMethod, MethodOutput, get_method, make_method
from gradellm_lens.methods.grad_ellm import VARIANTS
from gradellm_lens.numerics import flat_rows

CTX = 128  # tiny-llama's context


def _finite_in_prefix(result: AttributionResult) -> bool:
    return all(torch.isfinite(result.step_scores(t)).all() for t in range(result.n_steps))


# ---- prompts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", " \n\t "])
def test_empty_and_whitespace_prompts_raise(tiny_model, text):
    with pytest.raises(InvalidInputError, match="empty"):
        encode_prompt(tiny_model, text)
    with pytest.raises(InvalidInputError, match="empty"):
        gl.explain(tiny_model, text, max_new_tokens=1)


def test_special_token_text_is_tokenized_as_special_tokens_and_attributed(tiny_model):
    """Documented: special-token strings become those tokens and are attributed like any token."""
    result = gl.explain(tiny_model, "<s></s>", max_new_tokens=2)
    assert result.tokens[: result.prompt_length] == ("<s>", "<s>", "</s>")  # BOS + the two specials
    assert _finite_in_prefix(result)
    chat = gl.explain(tiny_model, "<s></s>", prompt_format="chat", target="yes")
    assert chat.n_steps == 1 and _finite_in_prefix(chat)


@pytest.mark.parametrize(
    "text",
    ["the cat 😀 sat", "the cat \u202eשלום\u202c sat", "the\x00cat", "the \x1b[31mcat\x1b[0m sat", "\x00", "é ü ß 中文"],
)
def test_unicode_and_control_characters_work_with_a_warning(tiny_model, text):
    with pytest.warns(UserWarning, match="not in the model's vocabulary.*'<unk>'"):
        result = gl.explain(tiny_model, text, max_new_tokens=2)
    assert "<unk>" in result.tokens[: result.prompt_length]
    assert _finite_in_prefix(result)


def test_prompt_longer_than_context_is_refused_not_truncated(tiny_model):
    with pytest.raises(InvalidInputError, match=f"201 tokens, longer than the model's context of {CTX}"):
        gl.explain(tiny_model, "the cat " * 100)
    with pytest.raises(InvalidInputError, match=f"{CTX + 1} tokens, longer than the model's context"):
        gl.explain(tiny_model, [5] * (CTX + 1), target="cat")


def test_prompt_filling_the_context_has_no_room_to_generate(tiny_model):
    ids = [1] + [5] * (CTX - 1)
    with pytest.raises(InvalidInputError, match="fills the model's context of 128: there is no room"):
        gl.explain(tiny_model, ids, max_new_tokens=1)
    assert gl.explain(tiny_model, ids, target="cat").step_positions == (CTX - 1,)  # no generation: fine
    with pytest.raises(InvalidInputError, match="prompt plus forced continuation has 129 tokens"):
        gl.explain(tiny_model, ids, continuation="cat")


def test_generation_stops_at_the_context_with_a_warning(tiny_model):
    with pytest.warns(UserWarning, match="max_new_tokens=5 but only 1 token"):
        result = gl.explain(tiny_model, [1] + [5] * (CTX - 2), max_new_tokens=5, stop_at_eos=False)
    assert result.n_steps == 1 and len(result.tokens) == CTX


@pytest.mark.parametrize(
    "prompt,match",
    [
        ([1, -2, 3], "token id -2, outside the vocabulary"),
        ([1, 10**6], "token id 1000000, outside the vocabulary"),
        (torch.tensor([1.0, 2.0]), "must hold integer token ids"),
        (torch.tensor([True, False]), "must hold integer token ids"),
        (torch.ones(2, 3, dtype=torch.long), r"shape \(2, 3\) \(pass a list of prompts for a batch\)"),
        (None, "The prompt must be text or token ids, got NoneType"),
        ([[1, 2], [3, 10**6]], "Prompt 2 of 2: The prompt has token id 1000000"),
        (5, "The prompt must be text or token ids, got int"),
        (torch.tensor(5), r"1-D sequence of token ids, got shape \(\)"),
        ([], "The list of prompts is empty"),
        (["the cat", 5], "mixes token ids with texts"),
    ],
)
def test_bad_token_id_prompts(tiny_model, prompt, match):
    with pytest.raises(InvalidInputError, match=match):
        gl.explain(tiny_model, prompt, max_new_tokens=1)


def test_token_id_prompts_are_taken_as_given(tiny_model, tiny_ids):
    as_list = gl.explain(tiny_model, tiny_ids.tolist(), max_new_tokens=2)
    as_batch_row = gl.explain(tiny_model, tiny_ids[None], max_new_tokens=2)
    assert torch.equal(as_list.token_ids[: len(tiny_ids)], tiny_ids)
    assert torch.equal(as_list.scores.nan_to_num(-1), as_batch_row.scores.nan_to_num(-1))


# ---- batches ------------------------------------------------------------------------------------


def test_batch_of_mixed_lengths_equals_one_by_one(tiny_model, tiny_ids):
    prompts = ["the cat", "the dog sat on the mat because it was a good day", tiny_ids[:4].tolist()]
    results = gl.explain(tiny_model, prompts, max_new_tokens=2, layers="all")
    assert isinstance(results, list) and len(results) == 3
    for prompt, result in zip(prompts, results):
        single = gl.explain(tiny_model, prompt, max_new_tokens=2, layers="all")
        assert result.tokens == single.tokens
        torch.testing.assert_close(result.scores, single.scores, equal_nan=True)
    assert len({r.scores.shape[1] for r in results}) == 3  # different lengths, each its own result


@pytest.mark.parametrize(
    "bad_index,bad,match",
    [(1, "", "Prompt 2 of 3: The prompt is empty"), (2, "the " * 200, "Prompt 3 of 3: The prompt has 201 tokens")],
)
def test_batch_validates_every_prompt_before_any_work(tiny_model, monkeypatch, bad_index, bad, match):
    """Documented: all prompts are checked first; the error names the bad one; nothing was generated."""
    import gradellm_lens.attribute as attribute

    calls = []
    real = attribute.greedy_continuation
    monkeypatch.setattr(attribute, "greedy_continuation", lambda *a, **k: calls.append(1) or real(*a, **k))
    prompts = ["the cat", "the dog sat", "a big red dog"]
    prompts[bad_index] = bad
    with pytest.raises(InvalidInputError, match=match):
        gl.explain(tiny_model, prompts, max_new_tokens=2)
    assert calls == []


def test_batch_error_during_computation_names_the_prompt(tiny_model):
    with tiny_model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", nan_at(slice(None)))]):
        with pytest.raises(NumericalError, match="Prompt 1 of 2: .*NaN/inf logits"):
            gl.explain(tiny_model, ["the cat", "the dog"], max_new_tokens=1)


# ---- names and options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: gl.explain(m, "the cat", "grad_elm"), "Unknown attribution method 'grad_elm'. Did you mean"),
        (lambda m: gl.explain(m, "the cat", variant="refernce"), "Did you mean 'reference'"),
        (lambda m: gl.explain(m, "the cat", lyers=2), "option for method 'grad_ellm'.*Did you mean 'layers'"),
        (lambda m: gl.explain(m, "the cat", objective="logits"), "objective='logits' is invalid. Did you mean 'logit'"),
        (lambda m: gl.explain(m, "the cat", sign="neg"), "sign='neg' is invalid"),
        (lambda m: gl.explain(m, "the cat", None), "Unknown attribution method None"),
        (lambda m: get_method("gradellm"), "Did you mean 'grad_ellm'"),
        (lambda m: make_method(GradEllm(m), m, layers=2), "Options cannot be combined"),
        (lambda m: GradEllm(m, variant="patern"), "Did you mean 'pattern'"),
        (lambda m: gl.load_model("tiny-lama"), "Unknown model 'tiny-lama'. Did you mean 'tiny-llama'"),
        (lambda m: gl.load_model("/no/such/model/dir"), "No model directory at '/no/such/model/dir'"),
        (lambda m: gl.load_model("tiny-llama", dtype="fp8"), "dtype='fp8' is invalid"),
        (lambda m: gl.explain(None, "the cat"), "Expected a TransformerBridge .* got NoneType"),
        (lambda m: gl.explain("tiny-llama", "the cat"), r"load it first with load_model\('tiny-llama'\)"),
    ],
)
def test_unknown_names_and_wrong_objects(tiny_model, call, match):
    with pytest.raises(InvalidInputError, match=match):
        call(tiny_model)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(layers=[7]), "Layer index 7 is out of range: the model has 2 layers"),
        (dict(layers=[-3]), "Layer index -3 is out of range"),
        (dict(layers=5), "only 2 layers"),
        (dict(layers="last"), "layers must be an int K"),
        (dict(target="cat", continuation="sat"), "either target= .* or continuation="),
        (dict(max_new_tokens=0), "max_new_tokens must be an integer >= 1, got 0"),
        (dict(max_new_tokens=-3), "max_new_tokens must be an integer >= 1, got -3"),
        (dict(max_new_tokens=2.5), r"max_new_tokens must be an integer >= 1, got 2.5 \(float\)"),
        (dict(max_new_tokens=True), "max_new_tokens must be an integer"),
        (dict(target="cat", contrast="cat"), "contrast token id equals the target token id"),
        (dict(target=5, contrast=5), "identically 0"),
        (dict(continuation="cat", contrast="cat"), "contrast token id equals the target token id"),
        (dict(target=""), "The target '' encodes to no tokens"),
        (dict(target=10**6), "outside the model's vocabulary"),
        (dict(target=-1), "target token id must be a non-negative integer"),
        (dict(target=1.5), "target token id must be a non-negative integer, got 1.5"),
        (dict(continuation=""), "forced continuation '' encodes to no tokens"),
        (dict(continuation=[1, 10**6]), "forced continuation has token id 1000000"),
        (dict(prompt_format="chat", system=None, max_new_tokens="3"), "max_new_tokens must be an integer"),
        (dict(prompt_format="chta"), "Did you mean 'chat'"),
        (dict(chat_template=True), "chat_template= is now prompt_format="),
    ],
)
def test_inconsistent_options(tiny_model, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        gl.explain(tiny_model, "the cat", **kwargs)


def test_max_new_tokens_is_ignored_without_generation(tiny_model):
    """Documented: max_new_tokens only matters when generating, so 0 is fine with target=."""
    assert gl.explain(tiny_model, "the cat", target="sat", max_new_tokens=0).n_steps == 1


def test_multi_token_and_unknown_targets_warn(tiny_model):
    with pytest.warns(UserWarning, match=r"is 2 tokens \['cat', 'sat'\]; explaining its first token only"):
        result = gl.explain(tiny_model, "the", target="cat sat")
    assert result.target_ids == (tiny_model.tokenizer.convert_tokens_to_ids("cat"),)
    with pytest.warns(UserWarning, match="target are not in the model's vocabulary"):
        gl.explain(tiny_model, "the", target="zebra")


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Target("dog"), r"Target token_id must be a non-negative integer, got 'dog' \(str\)"),
        (lambda: Target(1.5), "got 1.5"),
        (lambda: Target(True), "got True"),
        (lambda: Target(-3), "non-negative integer, got -3"),
        (lambda: Target(1, contrast_id="x"), "Target contrast_id must be"),
        (lambda: Target(4, 4), "identically 0"),
        (lambda: Target(1, objective="lgit"), "Did you mean 'logit'"),
        (lambda: Step("a", Target(1)), "Step position must be a non-negative integer, got 'a'"),
        (lambda: Step(-1, Target(1)), "Step position must be a non-negative integer, got -1"),
        (lambda: Step(1, 5), "Step target must be a Target"),
    ],
)
def test_bad_targets_and_steps(make, match):
    with pytest.raises(InvalidInputError, match=match):
        make()


def test_numpy_and_tensor_integers_are_accepted():
    target = Target(np.int64(3), torch.tensor(4))
    step = Step(np.int32(2), target)
    assert (type(target.token_id), type(target.contrast_id), type(step.position)) == (int, int, int)


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


# ---- result files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory):
    result = gl.explain(tiny_model, "the cat sat", max_new_tokens=2, layers="all")
    path = result.save(tmp_path_factory.mktemp("saved") / "ok.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    return result, path, arrays


def _write_npz(path, arrays, **changes):
    arrays = {**arrays, **changes}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _meta(arrays, **changes):
    return np.asarray(json.dumps({**json.loads(str(arrays["meta"])), **changes}))


def test_result_round_trip(saved):
    result, path, _ = saved
    loaded = AttributionResult.load(path)
    assert loaded.tokens == result.tokens and loaded.flat_steps == result.flat_steps
    torch.testing.assert_close(loaded.scores, result.scores, equal_nan=True)


def test_load_rejects_bad_files(saved, tmp_path):
    _, _, arrays = saved
    (tmp_path / "garbage.npz").write_bytes(b"\x00garbage\x1b")
    with zipfile.ZipFile(tmp_path / "text.npz", "w") as zf:
        zf.writestr("readme.txt", "not numpy")
    scores = arrays["scores"].copy()
    scores[0, 0] = np.nan
    cases = {
        tmp_path / "missing.npz": "No attribution file at",
        tmp_path: "No attribution file at",
        tmp_path / "garbage.npz": r"not an \.npz archive",
        tmp_path / "text.npz": "meta is not a file in the archive",
        _write_npz(tmp_path / "nometa.npz", arrays, meta=None): "meta is not a file",
        _write_npz(tmp_path / "badjson.npz", arrays, meta=np.asarray("{not json")): "meta is not JSON",
        _write_npz(tmp_path / "list.npz", arrays, meta=np.asarray("[1, 2]")): "format version None",
        _write_npz(tmp_path / "v9.npz", arrays, meta=_meta(arrays, format_version=9)): "format version 9, expected 1",
        _write_npz(tmp_path / "notokens.npz", arrays, meta=np.asarray('{"format_version": 1}')): "missing field 'tok",
        _write_npz(tmp_path / "noscores.npz", arrays, scores=None): "scores",
        _write_npz(tmp_path / "shape.npz", arrays, scores=arrays["scores"][:, :-1]): r"scores: shape \(\d+, \d+\)",
        _write_npz(tmp_path / "1d.npz", arrays, scores=arrays["scores"][0]): "scores: expected a 2-D float array",
        _write_npz(tmp_path / "steps.npz", arrays, step_positions=arrays["step_positions"][:1]): "step_positions: sh",
        _write_npz(tmp_path / "pos.npz", arrays, step_positions=arrays["step_positions"] + 50): "outside the sequence",
    }
    for path, match in cases.items():
        with pytest.raises(InvalidInputError, match=match):
            AttributionResult.load(path)
    with pytest.raises(InvalidInputError, match="scores of step 0 contain NaN/inf inside the attributed prefix"):
        AttributionResult.load(_write_npz(tmp_path / "nan.npz", arrays, scores=scores))


def test_results_never_hold_nan_inside_a_prefix(saved):
    result, _, _ = saved
    scores = result.scores.clone()
    scores[1, 2] = float("inf")
    with pytest.raises(NumericalError, match="step 1"):
        result.with_scores(scores)
    with pytest.raises(NumericalError, match=r"explained logit \(target_logits\) of step 0 is not finite"):
        result.with_scores(result.scores, target_logits=(float("nan"),) * result.n_steps)
    padded = result.scores.clone()
    padded[0, -1] = float("nan")  # after step 0's prefix: the padding convention, fine
    assert result.with_scores(padded).n_steps == result.n_steps


# ---- numerical safety ---------------------------------------------------------------------------


def test_flat_rows():
    nan = float("nan")
    scores = torch.tensor([[0.0, 0.0, nan], [2.0, 2.0, 2.0], [1.0, 2.0, nan], [3.0, nan, nan], [0.0, nan, nan]])
    assert flat_rows(scores).tolist() == [True, True, False, False, True]


def test_all_negative_layer_maps_give_flagged_zeros_not_nan(tiny_model):
    """Grad-ELLM's ReLU zeroes a map whose every layer is negative; it is reported, not rescaled.

    On a one-token prefix (gradient x value, no spatial weight) swapping target and contrast negates
    the layer map, so exactly one order is negative: its score is 0 and flagged; the other is kept.
    """
    method = GradEllm(tiny_model, variant="no_spatial", layers=[1])
    outs = [method.attribute([1], [Step(0, Target(x, y))]) for x, y in ((33, 40), (40, 33))]
    layer_maps = [float(o.layer_head.sum(dim=2)[0, 0, 0]) for o in outs]
    assert layer_maps[0] == pytest.approx(-layer_maps[1]) and layer_maps[0] != 0
    negative, positive = sorted(outs, key=lambda o: float(o.layer_head.sum()))
    assert negative.scores.tolist() == [[0.0]] and flat_rows(negative.scores).tolist() == [True]
    assert positive.scores[0, 0] > 0 and flat_rows(positive.scores).tolist() == [False]
    # loosened attention over a single key is constant, so lambda = 0 by convention: also flat zeros
    loosened = GradEllm(tiny_model).attribute([1], [Step(0, Target(33))])
    assert loosened.scores.tolist() == [[0.0]] and flat_rows(loosened.scores).tolist() == [True]


def test_flat_maps_warn_and_keep_zeros(tiny_model):
    """With all value vectors zeroed, gradient x value is 0 everywhere: an all-zero, flagged result."""
    zero_v = [(f"blocks.{i}.attn.hook_v", lambda v, hook: v * 0) for i in range(tiny_model.cfg.n_layers)]
    with tiny_model.hooks(fwd_hooks=zero_v):  # every layer: the default attributes all of them
        with pytest.warns(FlatAttributionWarning, match=r"step\(s\) \[0, 1\] have flat scores"):
            result = gl.explain(tiny_model, "the cat sat", max_new_tokens=2)
    assert result.flat_steps == (0, 1)
    assert _finite_in_prefix(result) and all((result.step_scores(t) == 0).all() for t in range(2))


VARIANT_NAMES = sorted(VARIANTS)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
@pytest.mark.parametrize(
    "hook_name,hook,match",
    [
        ("blocks.0.hook_resid_post", nan_at(slice(None)), "objective is not finite"),
        ("blocks.1.attn.hook_z", nan_at(slice(None)), "objective is not finite"),
        ("blocks.0.hook_resid_post", lambda t, hook: t * float("inf"), "objective is not finite"),
        ("blocks.0.hook_resid_post", nan_gradient, "gradient at hook point .* contains NaN/inf"),
        ("blocks.1.hook_resid_mid", nan_gradient, "gradient at hook point .* contains NaN/inf"),
    ],
)
def test_nan_in_forward_or_backward_raises_numerical_error(tiny_model, tiny_ids, variant, hook_name, hook, match):
    steps = [Step(p, Target(int(tiny_ids[p + 1]))) for p in (3, 6)]
    with tiny_model.hooks(fwd_hooks=[(hook_name, hook)]), pytest.raises(NumericalError, match=match):
        GradEllm(tiny_model, variant=variant, layers="all").attribute(tiny_ids, steps)


def test_nan_through_explain(tiny_model):
    with tiny_model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", nan_at(slice(None)))]):
        with pytest.raises(NumericalError, match="NaN/inf logits at generation step 0"):
            gl.explain(tiny_model, "the cat", max_new_tokens=2)
        with pytest.raises(NumericalError, match="objective is not finite"):
            gl.explain(tiny_model, "the cat", continuation="sat on")
    with tiny_model.hooks(fwd_hooks=[("blocks.1.hook_resid_post", nan_gradient)]):
        with pytest.raises(NumericalError, match="gradient at hook point"):
            gl.explain(tiny_model, "the cat", target="sat")
    # a poisoned backward *upstream* of the attributed layer never reaches its gradient: valid result
    with tiny_model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", nan_gradient)]):
        assert _finite_in_prefix(gl.explain(tiny_model, "the cat", target="sat", layers=[1]))


def test_capture_names_the_bad_objective_rows(tiny_model, tiny_ids):
    poison_from_position_5 = backward_fault(nan_where_used, slice(5, None))  # row 0 reads position 3 only
    with tiny_model.hooks(fwd_hooks=[("blocks.1.hook_resid_post", poison_from_position_5)]):
        with pytest.raises(NumericalError, match=r"objective row\(s\) \[1\]"):
            capture_gradients(
                tiny_model, tiny_ids[None], grad_names=["blocks.1.attn.hook_z"],
                objective=lambda lg: torch.stack([lg[0, 3, 5], lg[0, 7, 5]]),
            )  # fmt: skip


def test_capture_rejects_unknown_hook_points(tiny_model, tiny_ids):
    def capture(name):
        capture_gradients(tiny_model, tiny_ids[None], grad_names=[name], objective=lambda lg: lg.sum())

    with pytest.raises(InvalidInputError, match=r"Unknown hook point 'blocks.7.attn.hook_z'.*blocks.0 .. blocks.1"):
        capture("blocks.7.attn.hook_z")
    with pytest.raises(InvalidInputError, match="Did you mean 'blocks.1.attn.hook_z'"):
        capture("blocks.1.attn.hook_zz")


def test_method_returning_nan_scores_is_refused(tiny_model, tiny_ids):
    class Broken(AttributionMethod):
        def _attribute(self, tokens, steps):
            scores = torch.ones(len(steps), tokens.shape[0])
            scores[0, 1] = float("nan")
            return MethodOutput(scores=scores)

    Broken.method_name = "broken_for_test"  # set after class creation: not added to the registry
    assert "broken_for_test" not in gl.list_methods()
    with pytest.raises(NumericalError, match=r"broken_for_test produced NaN/inf scores inside the prefix of step 0"):
        Broken(tiny_model).attribute(tiny_ids, [Step(4, Target(1))])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_keeps_float32_scores(tiny_hf, tiny_tokenizer, tiny_ids, dtype):
    import copy

    model = gl.load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, dtype=dtype, device="cpu")
    assert next(model.parameters()).dtype == getattr(torch, dtype)
    result = gl.explain(model, tiny_ids[:8], max_new_tokens=2, layers="all")
    assert result.scores.dtype == torch.float32 and result.layer_head.dtype == torch.float32
    assert _finite_in_prefix(result) and all(np.isfinite(result.target_logits))
    full = GradEllm(gl.load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu"), layers="all")
    steps = [Step(6, Target(int(tiny_ids[7])))]
    half, ref = GradEllm(model, layers="all").attribute(tiny_ids, steps), full.attribute(tiny_ids, steps)
    assert int(half.scores[0, :7].argmax()) == int(ref.scores[0, :7].argmax())


# ---- command line -------------------------------------------------------------------------------


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _error_lines(err: str) -> list[str]:
    """stderr lines other than one-line warnings."""
    return [line for line in err.strip().splitlines() if ": warning: " not in line]


@pytest.mark.parametrize(
    "argv,match",
    [
        (["explain", "", "--model", "tiny-llama"], "The prompt is empty"),
        (["explain", "the cat", "--model", "tiny-llama", "--method", "saliencee"], "Did you mean 'saliency'"),
        (["explain", "the cat", "--model", "tiny-llama", "--variant", "refernce"], "Did you mean 'reference'"),
        (["explain", "the cat", "--model", "tiny-llama", "-O", "lyers=2"], "Did you mean 'layers'"),
        (["explain", "the cat", "--model", "tiny-llama", "-O", "layers"], "must look like key=value"),
        (["explain", "the cat", "--model", "tiny-llama", "-O", "layers=[7]"], "Layer index 7 is out of range"),
        (["explain", "the cat", "--model", "tiny-llama", "--max-new-tokens", "0"], "max_new_tokens must be"),
        (["explain", "the cat", "--model", "tiny-llama", "--target", "a", "--continuation", "b"], "not both"),
        (["explain", "the cat", "--model", "tiny-llama", "--target", "cat", "--contrast", "cat"], "identically 0"),
        (["explain", "the " * 200, "--model", "tiny-llama"], "longer than the model's context"),
        (["explain", "the cat", "--model", "tiny-lama"], "Did you mean 'tiny-llama'"),
        (["explain", "the cat", "--model", "tiny-llama", "--dtype", "fp8"], "dtype='fp8' is invalid"),
        (["demo", "--model", "tiny-llama", "--max-new-tokens", "-1"], "max_new_tokens must be"),
    ],
)
def test_cli_errors_are_one_line(capsys, argv, match):
    code, _, err = _cli(capsys, *argv)
    lines = _error_lines(err)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"gradellm-lens {argv[0]}: error: ") and "Traceback" not in err
    assert re.search(match, lines[0])


def test_cli_file_errors_are_one_line(capsys, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, _, err = _cli(capsys, "explain", "the cat", "--model", "tiny-llama", "--save", str(blocker / "r.npz"))
    lines = _error_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("gradellm-lens explain: error: ")


def test_cli_argparse_errors_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "the cat", "--max-new-tokens", "x"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "usage:" not in err and err.endswith("; see gradellm-lens explain --help\n")
    with pytest.raises(SystemExit) as exc:
        main(["explian", "the cat"])
    assert exc.value.code == 2


def test_cli_warnings_are_one_line_each(capsys):
    code, _, err = _cli(capsys, "explain", "the", "--model", "tiny-llama", "--target", "cat sat")
    assert code == 0
    assert err.strip() and all(line.startswith("gradellm-lens explain: warning: ") for line in err.strip().splitlines())


def test_cli_internal_errors_and_interrupts(capsys, monkeypatch):
    import gradellm_lens.attribute as attribute

    def crash(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(attribute, "explain", crash)
    code, _, err = _cli(capsys, "explain", "the cat", "--model", "tiny-llama")
    assert code == 1 and err.strip() == (
        "gradellm-lens explain: internal error: RuntimeError: boom second line (rerun with --debug for the traceback)"
    )
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", "explain", "the cat", "--model", "tiny-llama"])

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(attribute, "explain", interrupt)
    code, _, err = _cli(capsys, "explain", "the cat", "--model", "tiny-llama")
    assert code == 130 and err.strip() == "gradellm-lens explain: interrupted"


def test_cli_debug_shows_the_traceback(capsys):
    with pytest.raises(LensError, match="The prompt is empty"):
        main(["--debug", "explain", " ", "--model", "tiny-llama"])


def test_cli_subprocess_one_line_error():
    proc = subprocess.run(
        [sys.executable, "-m", "gradellm_lens.cli.main", "explain", "\x1b[31m the cat", "--model", "tiny-llama",
         "--target", "cat", "--contrast", "cat"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    expected = r"gradellm-lens explain: error: The contrast token id equals the target token id \(\d+\).*"
    assert re.fullmatch(expected, lines[0])


def test_warnings_do_not_leak_from_cli(capsys):
    before = warnings.showwarning
    _cli(capsys, "explain", "", "--model", "tiny-llama")
    assert warnings.showwarning is before


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"gradellm-lens {gl.__version__}"


@pytest.mark.parametrize("command", ["explain", "demo", "methods", "study"])
def test_cli_every_option_has_help_showing_its_default(command):
    from gradellm_lens.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    text = " ".join(sub.format_help().split())
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help"
        default = action.default
        if action.option_strings and default not in (None, False, argparse.SUPPRESS):
            assert f"default: {default}" in text, f"{command} {action.option_strings[0]} does not show its default"
    assert "(default: 10)" in " ".join(build_parser().parse_args(["explain", "x"])._parser.format_help().split())


def test_cli_help_is_plain_text():
    from gradellm_lens.cli.main import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, text in [("gradellm-lens", parser.format_help())] + [(c, commands[c].format_help()) for c in
                                                                   ("explain", "demo", "methods", "study")]:  # fmt: skip
        for markup in ("`", ":class:", ":func:", ":mod:", ":math:", "\\"):
            assert markup not in text, (name, markup)


def test_cli_debug_is_accepted_after_the_command(capsys):
    with pytest.raises(LensError, match="The prompt is empty"):
        main(["explain", " ", "--model", "tiny-llama", "--debug"])
    code, _, err = _cli(capsys, "explain", " ", "--model", "tiny-llama")  # and is off by default
    assert code == 2 and "Traceback" not in err


def test_cli_unquoted_prompt_gets_a_hint(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "the", "cat", "sat", "--model", "tiny-llama"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and 'Quote it: gradellm-lens explain "the cat sat"' in err
    with pytest.raises(SystemExit):
        main(["explain", "the cat", "--model", "tiny-llama", "--bogus"])
    assert "unrecognized arguments: --bogus" in (err := capsys.readouterr().err) and "Quote it" not in err


def test_cli_ctrl_c_during_imports_is_one_line(tmp_path):
    """Ctrl-C while torch is still being imported: exit 130 and one line, no traceback."""
    script = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from gradellm_lens.cli.main import main\n"
        "sys.exit(main(['explain', 'the cat', '--model', 'tiny-llama']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130 and proc.stderr == "gradellm-lens: interrupted\n", proc.stderr


def test_cli_text_that_is_not_utf8_exits_2_naming_the_position():
    """Undecodable bytes in argv (``$'the \\xff cat'``) reach Python as lone surrogates."""
    proc = subprocess.run(
        [sys.executable, "-m", "gradellm_lens.cli.main", "explain", b"the \xff cat", "--model", "tiny-llama"],
        capture_output=True, timeout=300,
    )  # fmt: skip
    err = proc.stderr.decode("utf-8", errors="replace")
    lines = _error_lines(err)
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(r"^gradellm-lens explain: error: The prompt has the byte 0xff.*at character 4", lines[0])


def test_cli_prompts_file_one_report_for_all(capsys, tmp_path):
    lines = tmp_path / "prompts.txt"
    lines.write_text("the cat sat\n\nthe dog ran\n")
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text(json.dumps({"prompt": "the cat sat", "id": 1}) + "\n" + json.dumps({"prompt": "a red dog"}) + "\n")
    for source in (lines, jsonl):
        out = tmp_path / f"{source.stem}{source.suffix}.html"
        code, printed, err = _cli(capsys, "explain", "--prompts-file", source, "--model", "tiny-llama",
                                  "--max-new-tokens", "2", "--out", out, "--save", tmp_path / f"{source.suffix}.npz")
        assert code == 0, err
        assert printed.count("step 1/2 ->") == 2 and "wrote" in printed
        page = out.read_text(encoding="utf-8")
        assert "Example 1" in page and "Example 2" in page and "Example 3" not in page
    assert sorted(p.name for p in tmp_path.glob(".jsonl.*.npz")) == [".jsonl.1.grad_ellm.npz", ".jsonl.2.grad_ellm.npz"]


def test_cli_prompts_from_stdin(capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the cat\nthe dog\n")))
    code, printed, _ = _cli(capsys, "explain", "--prompts-file", "-", "--model", "tiny-llama", "--max-new-tokens", "1")
    assert code == 0 and printed.count("step 1/1 ->") == 2


@pytest.mark.parametrize(
    "content,match",
    [
        (b"\n  \n", "holds no prompts"),
        (b"the cat\nthe \xff dog\n", r"prompts\.txt:2: The line has the byte 0xff.*at character 4"),
        (b'{"prompt": "the cat"}\n{"text": "the dog"}\n', r"prompts\.txt:2: expected an object with a string"),
        (b'{"prompt": "the cat"}\nthe dog\n', r"prompts\.txt:2: not valid JSON"),
        (b'{"prompt": "the \\ud800 cat"}\n', r"prompts\.txt:1: Field 'prompt' has an unpaired surrogate U\+D800"),
        (
            b'{"prompt": "the cat"}\n{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
            r"prompts\.txt:2: arrays/objects nested more than 100 levels deep",
        ),
        (b"the cat\nthe dog " + b"dog " * 200 + b"\n", r"prompts\.txt:2: .*longer than the model's context"),
        (b"the cat\n", r"prompts\.txt:1: .*longer than the model's context"),
    ],
)
def test_cli_bad_prompts_file_is_named_by_line(capsys, tmp_path, content, match):
    path = tmp_path / "prompts.txt"
    path.write_bytes(content)
    forced = ["--continuation", "dog " * 200] if content == b"the cat\n" else []  # one prompt, too long with it
    code, _, err = _cli(capsys, "explain", "--prompts-file", path, "--model", "tiny-llama", *forced)
    lines = _error_lines(err)
    assert code == 2 and len(lines) == 1 and re.search(match, lines[0]), lines


def test_cli_prompts_file_is_read_like_data_files(capsys, tmp_path, monkeypatch):
    """One JSONL reader: a BOM, U+2028 / U+0085 inside strings and a form feed in a plain line split nothing."""
    from gradellm_lens.cli.explain import read_prompts

    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps({"prompt": "the cat\u2028sat"}) + "\r\n").encode()
                     + json.dumps({"prompt": "the\x85dog"}, ensure_ascii=False).encode() + b"\n")  # fmt: skip
    assert read_prompts(str(path)) == [(f"{path}:1", "the cat\u2028sat"), (f"{path}:2", "the\x85dog")]
    plain = tmp_path / "prompts.txt"
    plain.write_bytes(b"\xef\xbb\xbfthe cat\x0csat\r\n\nthe dog\xe2\x80\xa8ran\n")
    assert read_prompts(str(plain)) == [(f"{plain}:1", "the cat\x0csat"), (f"{plain}:3", "the dog\u2028ran")]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"prompt": "the cat"}\n')))
    assert read_prompts("-") == [("<stdin>:1", "the cat")]
    code, out, _ = _cli(capsys, "explain", "--prompts-file", path, "--model", "tiny-llama", "--max-new-tokens", "1")
    assert code == 0 and out.count("step 1/1 ->") == 2 and '"prompt"' not in out  # the prompts, not the raw JSON


def test_cli_prompt_and_prompts_file_are_exclusive(capsys, tmp_path):
    code, _, err = _cli(capsys, "explain", "--model", "tiny-llama")
    assert code == 2 and "Give one prompt (quoted) or --prompts-file" in err


def test_progress_bars_only_when_asked_or_on_a_terminal(tiny_model, capsys):
    gl.explain(tiny_model, ["the cat", "the dog"], max_new_tokens=1)  # stderr is not a terminal: no bar
    assert capsys.readouterr().err == ""
    gl.explain(tiny_model, ["the cat", "the dog"], max_new_tokens=1, progress=True)
    assert "explain: 100%" in capsys.readouterr().err
    gl.explain(tiny_model, "the cat", max_new_tokens=40, stop_at_eos=False, progress=True)  # a long generation
    assert "generate: 100%" in capsys.readouterr().err
    gl.explain(tiny_model, "the cat", max_new_tokens=3, progress=True)  # a short one: no bar
    assert "generate" not in capsys.readouterr().err


def test_methods_help_is_plain_text(capsys):
    for name in gl.list_methods():
        code, out, _ = _cli(capsys, "methods", name)
        assert code == 0
        for markup in ("``", ":math:", ":class:", ".. math::", "\\", "{", "}"):
            assert markup not in out, (name, markup)
    _, out, _ = _cli(capsys, "methods", "grad_ellm")
    assert "H_i = ReLU(Σ_ℓ Σ_h c^(ℓ,h)_i)" in out and "λ^ℓ_i = minmax_(i ≤ p) cos(q^ℓ_p, k^ℓ_i)" in out


def test_latex_text():
    from gradellm_lens.cli.methods import latex_text, plain_text

    assert latex_text(r"\frac{\partial y}{\partial x_{i}}") == "(∂y)/(∂x_i)"
    assert latex_text(r"\sqrt{\varepsilon} \cdot \operatorname{ReLU}(\bar{x})") == "√(ε) · ReLU(x̄)"
    assert plain_text("see :class:`~a.b.Target` and :func:`gradellm_lens.explain` on **x** with ``y``") == (
        "see Target and explain() on x with y"
    )


@pytest.mark.slow
def test_smollm2_special_tokens_and_control_characters(smollm2):
    """On a byte-level BPE model nothing becomes unknown: specials and control bytes are tokens."""
    special = gl.explain(smollm2, "<|im_start|><|im_end|>", max_new_tokens=2)
    assert special.tokens[: special.prompt_length].count("<|im_end|>") == 1
    assert _finite_in_prefix(special)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no unknown-token warning on byte-level BPE
        warnings.simplefilter("ignore", FlatAttributionWarning)
        prompts = ["hi \x00 \x1b[31m 😀 שלום", "<|im_start|>"]
        hostile = gl.explain(smollm2, prompts, max_new_tokens=2, prompt_format="chat")
    assert all(_finite_in_prefix(r) for r in hostile)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("the \ud800 cat", r"unpaired surrogate U\+D800.*at character 4"), ("the \udcff cat", "byte 0xff.*at character 4")],
)
def test_text_that_is_not_unicode_is_refused_naming_the_position(tiny_model, text, expected):
    with pytest.raises(InvalidInputError, match=expected):
        encode_prompt(tiny_model, text)
    with pytest.raises(InvalidInputError, match=expected):
        gl.explain(tiny_model, "the cat", target=text)
