"""Step-wise generation attribution (``explain``) on the tiny random Llama, for every method; its input
checks, batches, NaN/inf, flat maps and progress bars."""

from __future__ import annotations

import warnings

import pytest
import torch
from faults import nan_at, nan_gradient
from helpers import CTX, finite_in_prefix

import gradellm_lens as gl
from gradellm_lens import InvalidInputError, NumericalError, Step, Target, explain, get_method, list_methods
from gradellm_lens.attribute import encode_prompt, greedy_continuation
from gradellm_lens.errors import FlatAttributionWarning

PROMPT = "the cat sat on the mat because"


def _logits(model, ids):
    with torch.no_grad():
        return model(torch.as_tensor(ids)[None])[0]


def test_greedy_generation_steps(tiny_model):
    result = explain(tiny_model, PROMPT, "random", max_new_tokens=3, stop_at_eos=False)
    prompt_ids = encode_prompt(tiny_model, PROMPT)
    n = prompt_ids.shape[0]
    assert result.prompt_length == n and result.n_steps == 3
    assert torch.equal(result.token_ids[:n], prompt_ids)
    assert torch.equal(result.token_ids[n:], greedy_continuation(tiny_model, prompt_ids, 3, stop_at_eos=False))
    assert result.step_positions == (n - 1, n, n + 1)
    assert result.target_ids == tuple(result.token_ids[n:].tolist())
    logits = _logits(tiny_model, result.token_ids)
    for t, p in enumerate(result.step_positions):  # greedy: every explained token is the argmax
        assert result.target_logits[t] == pytest.approx(float(logits[p].max()), abs=1e-5)
        assert int(logits[p].argmax()) == result.target_ids[t]
    assert result.target_tokens == result.generated_tokens


def test_forced_continuation(tiny_model, tiny_tokenizer):
    result = explain(tiny_model, PROMPT, "saliency", continuation="the dog ran home")
    assert result.generated_tokens == ("the", "dog", "ran", "home")
    assert result.target_ids == tuple(tiny_tokenizer.convert_tokens_to_ids(["the", "dog", "ran", "home"]))
    n = result.prompt_length
    # each step equals attributing its own prefix alone
    for t, p in enumerate(result.step_positions):
        step = Step(p, Target(result.target_ids[t]))
        alone = get_method("saliency")(tiny_model).attribute(result.token_ids[: p + 1], [step])
        torch.testing.assert_close(result.scores[t, : p + 1], alone.scores[0], atol=1e-5, rtol=1e-4)
    assert result.step_positions[0] == n - 1


def test_target_label_word(tiny_model, tiny_tokenizer):
    result = explain(tiny_model, "the movie was great . sentiment :", "input_x_gradient", target=" positive")
    positive = tiny_tokenizer.convert_tokens_to_ids("positive")
    assert result.n_steps == 1 and result.target_ids == (positive,) and result.generated_tokens == ()
    assert result.step_positions == (result.prompt_length - 1,)
    expected = float(_logits(tiny_model, result.token_ids)[-1, positive])
    assert result.target_logits[0] == pytest.approx(expected, abs=1e-5)
    assert result.target_tokens == ("positive",)  # the label word as text, though not in the sequence


def test_contrast_is_target_minus_contrast(tiny_model, tiny_tokenizer):
    """Input x gradient is linear in the explained scalar: IxG(a - b) = IxG(a) - IxG(b)."""
    prompt = "the movie was great . sentiment :"
    both = explain(tiny_model, prompt, "input_x_gradient", target="positive", contrast="negative", sign="raw")
    pos = explain(tiny_model, prompt, "input_x_gradient", target="positive", sign="raw")
    neg = explain(tiny_model, prompt, "input_x_gradient", target="negative", sign="raw")
    assert both.contrast_ids == (tiny_tokenizer.convert_tokens_to_ids("negative"),)
    assert both.target_logits[0] == pytest.approx(pos.target_logits[0] - neg.target_logits[0], abs=1e-5)
    torch.testing.assert_close(both.scores, pos.scores - neg.scores, atol=1e-5, rtol=1e-4)


def test_log_prob_objective(tiny_model):
    result = explain(tiny_model, PROMPT, "random", continuation="the dog", objective="log_prob")
    log_probs = torch.log_softmax(_logits(tiny_model, result.token_ids), -1)
    expected = [float(log_probs[p, t]) for p, t in zip(result.step_positions, result.target_ids)]
    assert result.target_logits == pytest.approx(expected, abs=1e-5) and result.objective == "log_prob"


def test_chat_template(tiny_model):
    result = explain(tiny_model, "the cat sat", "attention", prompt_format="chat", max_new_tokens=2, stop_at_eos=False)
    template = ("<s>", "user", ":", "the", "cat", "sat", "</s>", "<s>", "assistant", ":")
    assert result.tokens[: result.prompt_length] == template
    assert result.step_positions[0] == result.prompt_length - 1
    with_system = explain(tiny_model, "the cat sat", "random", prompt_format="chat", system="be good", target="yes")
    assert with_system.tokens[:6] == ("<s>", "system", ":", "be", "good", "</s>")


def test_list_of_prompts_equals_single_calls(tiny_model):
    prompts = ["the cat sat on", "a dog ran home because it was"]
    results = explain(tiny_model, prompts, "occlusion", continuation="the mat", sign="raw")
    assert isinstance(results, list) and len(results) == 2
    for prompt, result in zip(prompts, results):
        single = explain(tiny_model, prompt, "occlusion", continuation="the mat", sign="raw")
        assert result.tokens == single.tokens
        torch.testing.assert_close(result.scores, single.scores, equal_nan=True)


def test_multi_token_label_word_warns_and_uses_first_token(tiny_model, tiny_tokenizer):
    with pytest.warns(UserWarning, match=r"'good day' is 2 tokens \['good', 'day'\]; explaining its first token only"):
        result = explain(tiny_model, PROMPT, "random", target="good day")
    assert result.target_ids == (tiny_tokenizer.convert_tokens_to_ids("good"),)


def test_single_token_label_word_does_not_warn(tiny_model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explain(tiny_model, PROMPT, "random", target=" good")


@pytest.mark.filterwarnings("ignore::gradellm_lens.errors.FlatAttributionWarning")  # all-negative IxG rows
@pytest.mark.parametrize("method", list_methods())
def test_every_method_through_explain(tiny_model, method):
    result = explain(tiny_model, PROMPT, method, continuation="the dog ran")
    cls = get_method(method)
    assert result.method == method and result.options["method"] == method
    assert result.scores.shape == (3, len(result.tokens))
    for t, p in enumerate(result.step_positions):
        assert torch.isfinite(result.scores[t, : p + 1]).all() and torch.isnan(result.scores[t, p + 1 :]).all()
    if result.options.get("sign", "positive") != "raw":
        assert (result.scores.nan_to_num() >= 0).all(), f"{method} (signed={cls.signed}) returned negative scores"
    if result.layer_head is not None:
        assert result.layer_head.shape[:2] == (3, len(result.layers))
        assert result.layer_head.shape[2:] == (tiny_model.cfg.n_heads, len(result.tokens))


def test_bad_arguments(tiny_model):
    with pytest.raises(InvalidInputError, match="either target= .* or continuation="):
        explain(tiny_model, PROMPT, "random", target="good", continuation="the dog")
    with pytest.raises(InvalidInputError, match="'salency'.*Did you mean 'saliency'"):
        explain(tiny_model, PROMPT, "salency")
    with pytest.raises(InvalidInputError, match="Did you mean 'n_steps'"):
        explain(tiny_model, PROMPT, "integrated_gradients", steps=4)


class _SpacedVocab:
    """A model stub whose vocabulary has 'positive' (id 1) and ' positive' (id 2), preferring ``preferred``."""

    def __init__(self, preferred: int) -> None:
        self.preferred = preferred
        self.tokenizer = self
        self.weight = torch.zeros(1)

    def __call__(self, text_or_ids, add_special_tokens=True):
        if isinstance(text_or_ids, str):
            return {"input_ids": [2] if text_or_ids.startswith(" ") else [1]}
        logits = torch.zeros(1, text_or_ids.shape[1], 3)
        logits[0, -1, self.preferred] = 1.0
        return logits

    def convert_ids_to_tokens(self, ids):
        names = {1: "positive", 2: "Ġpositive"}
        return names[ids] if isinstance(ids, int) else [names[i] for i in ids]

    def parameters(self):
        return iter([self.weight])


def test_a_target_without_its_leading_space_is_warned_about_when_the_model_prefers_the_spaced_token():
    from gradellm_lens.attribute import spaced_target_hint

    ids = torch.tensor([0, 0])
    hint = spaced_target_hint(_SpacedVocab(preferred=2), ids, "positive", 1)
    assert hint is not None and "target='positive' explains the token 'positive'" in hint
    assert "ranks ' positive' (with a leading space) higher" in hint and "Pass target=' positive'" in hint
    assert spaced_target_hint(_SpacedVocab(preferred=1), ids, "positive", 1) is None  # the model wants it as given
    assert spaced_target_hint(_SpacedVocab(preferred=2), ids, " positive", 2) is None  # already spaced
    assert spaced_target_hint(_SpacedVocab(preferred=2), ids, 1, 1) is None  # an id: taken as meant


def test_no_spacing_warning_where_both_forms_are_one_token(tiny_model):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # tiny-llama's word-level vocabulary: 'good' is ' good'
        explain(tiny_model, "the movie was", target="good")


@pytest.mark.slow
def test_smollm2_target_without_its_space_warns(smollm2):
    with pytest.warns(UserWarning, match=r"target='positive' .* ranks ' positive' \(with a leading space\) higher"):
        explain(smollm2, "Review: a great and fun movie.\nSentiment:", target="positive")


def test_prompt_filling_the_context_has_no_room_to_generate(tiny_model):
    ids = [1] + [5] * (CTX - 1)
    with pytest.raises(InvalidInputError, match="context of 128"):
        gl.explain(tiny_model, ids, max_new_tokens=1)
    assert gl.explain(tiny_model, ids, target="cat").step_positions == (CTX - 1,)  # no generation: fine
    with pytest.raises(InvalidInputError, match="continuation.*129 tokens"):
        gl.explain(tiny_model, ids, continuation="cat")


def test_generation_stops_at_the_context_with_a_warning(tiny_model):
    with pytest.warns(UserWarning, match="max_new_tokens=5 but only 1 token"):
        result = gl.explain(tiny_model, [1] + [5] * (CTX - 2), max_new_tokens=5, stop_at_eos=False)
    assert result.n_steps == 1 and len(result.tokens) == CTX


@pytest.mark.parametrize(
    "prompt,match",
    [
        ([1, -2, 3], "token id -2.*vocabulary"),
        ([1, 10**6], "token id 1000000.*vocabulary"),
        (torch.tensor([1.0, 2.0]), "must hold integer token ids"),
        (torch.tensor([True, False]), "must hold integer token ids"),
        (torch.ones(2, 3, dtype=torch.long), r"shape \(2, 3\).*list of prompts"),
        (None, "prompt.*NoneType"),
        ([[1, 2], [3, 10**6]], "Prompt 2 of 2:.*token id 1000000"),
        (5, r"prompt.*got int\b"),
        (torch.tensor(5), r"1-D.*shape \(\)"),
        ([], "prompts is empty"),
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
    [(1, "", "Prompt 2 of 3:.*empty"), (2, "the " * 200, "Prompt 3 of 3:.*201 tokens")],
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


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(layers=[7]), "Layer index 7.*2 layers"),
        (dict(layers=[-3]), "Layer index -3"),
        (dict(layers=5), "only 2 layers"),
        (dict(layers="last"), "layers.*int"),
        (dict(target="cat", continuation="sat"), "either target= .* or continuation="),
        (dict(max_new_tokens=0), r"max_new_tokens.*got 0\b"),
        (dict(max_new_tokens=-3), "max_new_tokens.*-3"),
        (dict(max_new_tokens=2.5), r"max_new_tokens.*2\.5"),
        (dict(max_new_tokens=True), "max_new_tokens.*True"),
        (dict(target="cat", contrast="cat"), "contrast.*equals the target"),
        (dict(target=5, contrast=5), "identically 0"),
        (dict(continuation="cat", contrast="cat"), "contrast.*equals the target"),
        (dict(target=""), "target ''.*no tokens"),
        (dict(target=10**6), "outside the model's vocabulary"),
        (dict(target=-1), "target token id.*-1"),
        (dict(target=1.5), r"target token id.*1\.5"),
        (dict(continuation=""), "continuation ''.*no tokens"),
        (dict(continuation=[1, 10**6]), "continuation.*token id 1000000"),
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


def test_flat_maps_warn_and_keep_zeros(tiny_model):
    """With all value vectors zeroed, gradient x value is 0 everywhere: an all-zero, flagged result."""
    zero_v = [(f"blocks.{i}.attn.hook_v", lambda v, hook: v * 0) for i in range(tiny_model.cfg.n_layers)]
    with tiny_model.hooks(fwd_hooks=zero_v):  # every layer: the default attributes all of them
        with pytest.warns(FlatAttributionWarning, match=r"step\(s\) \[0, 1\] have flat scores"):
            result = gl.explain(tiny_model, "the cat sat", max_new_tokens=2)
    assert result.flat_steps == (0, 1)
    assert finite_in_prefix(result) and all((result.step_scores(t) == 0).all() for t in range(2))


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
        assert finite_in_prefix(gl.explain(tiny_model, "the cat", target="sat", layers=[1]))


def test_progress_bars_only_when_asked_or_on_a_terminal(tiny_model, capsys):
    gl.explain(tiny_model, ["the cat", "the dog"], max_new_tokens=1)  # stderr is not a terminal: no bar
    assert capsys.readouterr().err == ""
    gl.explain(tiny_model, ["the cat", "the dog"], max_new_tokens=1, progress=True)
    assert "explain: 100%" in capsys.readouterr().err
    gl.explain(tiny_model, "the cat", max_new_tokens=40, stop_at_eos=False, progress=True)  # a long generation
    assert "generate: 100%" in capsys.readouterr().err
    gl.explain(tiny_model, "the cat", max_new_tokens=3, progress=True)  # a short one: no bar
    assert "generate" not in capsys.readouterr().err
