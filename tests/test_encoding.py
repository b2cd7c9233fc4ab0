"""Prompt encoding: empty, special-token, out-of-vocabulary, over-long and non-Unicode text."""

from __future__ import annotations

import warnings

import pytest
from helpers import CTX, finite_in_prefix

import gradellm_lens as gl
from gradellm_lens import InvalidInputError
from gradellm_lens.attribute import encode_prompt
from gradellm_lens.errors import FlatAttributionWarning


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
    assert finite_in_prefix(result)
    chat = gl.explain(tiny_model, "<s></s>", prompt_format="chat", target="yes")
    assert chat.n_steps == 1 and finite_in_prefix(chat)


@pytest.mark.parametrize(
    "text",
    ["the cat 😀 sat", "the cat \u202eשלום\u202c sat", "the\x00cat", "the \x1b[31mcat\x1b[0m sat", "\x00", "é ü ß 中文"],
)
def test_unicode_and_control_characters_work_with_a_warning(tiny_model, text):
    with pytest.warns(UserWarning, match="not in the model's vocabulary.*'<unk>'"):
        result = gl.explain(tiny_model, text, max_new_tokens=2)
    assert "<unk>" in result.tokens[: result.prompt_length]
    assert finite_in_prefix(result)


def test_prompt_longer_than_context_is_refused_not_truncated(tiny_model):
    with pytest.raises(InvalidInputError, match=f"201 tokens.*context of {CTX}"):
        gl.explain(tiny_model, "the cat " * 100)
    with pytest.raises(InvalidInputError, match=f"{CTX + 1} tokens.*context"):
        gl.explain(tiny_model, [5] * (CTX + 1), target="cat")


@pytest.mark.slow
def test_smollm2_special_tokens_and_control_characters(smollm2):
    """On a byte-level BPE model nothing becomes unknown: specials and control bytes are tokens."""
    special = gl.explain(smollm2, "<|im_start|><|im_end|>", max_new_tokens=2)
    assert special.tokens[: special.prompt_length].count("<|im_end|>") == 1
    assert finite_in_prefix(special)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no unknown-token warning on byte-level BPE
        warnings.simplefilter("ignore", FlatAttributionWarning)
        prompts = ["hi \x00 \x1b[31m 😀 שלום", "<|im_start|>"]
        hostile = gl.explain(smollm2, prompts, max_new_tokens=2, prompt_format="chat")
    assert all(finite_in_prefix(r) for r in hostile)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("the \ud800 cat", r"unpaired surrogate U\+D800.*at character 4"), ("the \udcff cat", "byte 0xff.*at character 4")],
)
def test_text_that_is_not_unicode_is_refused_naming_the_position(tiny_model, text, expected):
    with pytest.raises(InvalidInputError, match=expected):
        encode_prompt(tiny_model, text)
    with pytest.raises(InvalidInputError, match=expected):
        gl.explain(tiny_model, "the cat", target=text)
