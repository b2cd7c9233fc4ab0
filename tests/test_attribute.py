"""Step-wise generation attribution (``explain``) on the tiny random Llama, for every method."""

from __future__ import annotations

import warnings

import pytest
import torch

from gradellm_lens import InvalidInputError, Step, Target, explain, get_method, list_methods
from gradellm_lens.attribute import encode_prompt, greedy_continuation

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
    with pytest.raises(InvalidInputError, match="Unknown attribution method 'salency'. Did you mean 'saliency'"):
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
