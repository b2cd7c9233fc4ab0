"""Normalisation, word merging and span selection (gradellm_lens.aggregate), numbers worked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from gradellm_lens import AttributionResult, InvalidInputError, explain
from gradellm_lens.aggregate import find_token_span, merge_words, normalise, restrict_to_span, word_starts

NAN = math.nan


def make_result(tokens, prompt_length, scores, layer_head=None):
    scores = torch.tensor(scores, dtype=torch.float32)
    positions = tuple(int((~torch.isnan(row)).sum()) - 1 for row in scores)
    return AttributionResult(
        tokens=tuple(tokens),
        token_ids=torch.arange(100, 100 + len(tokens)),
        prompt_length=prompt_length,
        scores=scores,
        step_positions=positions,
        target_ids=tuple(100 + p + 1 for p in positions),
        target_logits=(1.0,) * len(positions),
        method="test",
        model="none",
        layer_head=layer_head,
        layers=() if layer_head is None else tuple(range(layer_head.shape[1])),
    )


@pytest.mark.parametrize(
    "how,expected",
    [
        ("sum", [[0.25, 0.75, NAN], [-0.5, 1.5, NAN], [0.0, 0.0, NAN], [0.5, 0.5, NAN]]),
        ("l1", [[0.25, 0.75, NAN], [-0.25, 0.75, NAN], [0.0, 0.0, NAN], [0.5, 0.5, NAN]]),
        ("max", [[1 / 3, 1.0, NAN], [-1 / 3, 1.0, NAN], [0.0, 0.0, NAN], [1.0, 1.0, NAN]]),
        ("minmax", [[0.0, 1.0, NAN], [0.0, 1.0, NAN], [0.0, 0.0, NAN], [0.0, 0.0, NAN]]),
    ],
)
def test_normalise_tensor(how, expected):
    scores = torch.tensor([[1.0, 3.0, NAN], [-1.0, 3.0, NAN], [0.0, 0.0, NAN], [2.0, 2.0, NAN]])
    torch.testing.assert_close(normalise(scores, how), torch.tensor(expected), equal_nan=True)


def test_normalise_result_is_a_new_result():
    layer_head = torch.ones(2, 1, 1, 3)
    result = make_result(["a", "b", "c"], 2, [[1.0, 3.0, NAN], [2.0, 2.0, 4.0]], layer_head)
    out = normalise(result, "sum")
    torch.testing.assert_close(out.scores, torch.tensor([[0.25, 0.75, NAN], [0.25, 0.25, 0.5]]), equal_nan=True)
    assert out.options["aggregation"] == ["normalise:sum"] and "aggregation" not in result.options
    assert out.layer_head is layer_head and result.scores[0, 0] == 1.0
    with pytest.raises(InvalidInputError, match="how='softmax' is invalid"):
        normalise(result, "softmax")


# prompt: <|im_start|> user \n Un believ able Ġcat ! <|im_end|>   generated: ĠOK ay
BPE_TOKENS = ["<|im_start|>", "user", "Ċ", "Un", "believ", "able", "Ġcat", "!", "<|im_end|>", "ĠOK", "ay"]
BPE_SCORES = [[1, 2, 3, 4, 5, 6, 7, 8, 9, NAN, NAN], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, NAN]]


@pytest.mark.parametrize(
    "how,expected",
    [
        ("sum", [[1, 2, 3, 15, 15, 9, NAN], [1, 2, 3, 15, 15, 9, 10]]),
        ("max", [[1, 2, 3, 6, 8, 9, NAN], [1, 2, 3, 6, 8, 9, 10]]),
        ("mean", [[1, 2, 3, 5, 7.5, 9, NAN], [1, 2, 3, 5, 7.5, 9, 10]]),
    ],
)
def test_merge_words_byte_level_bpe(how, expected):
    result = make_result(BPE_TOKENS, 9, BPE_SCORES)
    out = merge_words(result, how)
    assert out.tokens == ("<|im_start|>", "user", "Ċ", "Unbelievable", "Ġcat!", "<|im_end|>", "ĠOKay")
    assert out.token_ids.tolist() == [100, 101, 102, 103, 106, 108, 109]
    assert out.prompt_length == 6 and out.step_positions == (5, 6)
    torch.testing.assert_close(out.scores, torch.tensor(expected, dtype=torch.float32), equal_nan=True)
    assert out.options["aggregation"] == [f"words:{how}"]


def test_merge_words_layer_head_consistent():
    layer_head = torch.rand(2, 3, 4, len(BPE_TOKENS))
    layer_head[0, ..., 9:] = NAN
    layer_head[1, ..., 10:] = NAN
    result = make_result(BPE_TOKENS, 9, BPE_SCORES, layer_head)
    out = merge_words(result, "sum")
    assert out.layer_head.shape == (2, 3, 4, 7)
    torch.testing.assert_close(out.layer_head[..., 3], layer_head[..., 3:6].sum(-1))
    torch.testing.assert_close(out.layer_head[0, ..., 6], torch.full((3, 4), NAN), equal_nan=True)
    merged_sum = merge_words(make_result(BPE_TOKENS, 9, layer_head.sum(dim=(1, 2)).tolist()), "sum").scores
    torch.testing.assert_close(out.layer_head.sum(dim=(1, 2)), merged_sum, equal_nan=True)


def test_word_starts_sentencepiece_and_wordpiece():
    pieces = ["<s>", "▁Hel", "lo", "▁world", "<0x0A>", "<0xC3>", "<0xA9>", "▁again"]
    assert word_starts(pieces) == [True, True, False, True, True, True, False, True]
    assert word_starts(["the", "play", "##ing", "cat"]) == [True, True, False, True]
    assert word_starts(["Ġa", "[SEP]", "b"], special_tokens={"[SEP]"}) == [True, True, True]
    assert word_starts(["Ġa", "[SEP]", "b"]) == [True, False, False]


def test_merge_words_never_joins_prompt_and_generation():
    result = make_result(["ĠThe", "Ġwor", "ld", "s"], 2, [[1, 2, NAN, NAN], [1, 2, 3, NAN]])
    out = merge_words(result)
    assert out.tokens == ("ĠThe", "Ġwor", "lds") and out.prompt_length == 2
    assert out.step_positions == (1, 2)
    torch.testing.assert_close(out.scores, torch.tensor([[1, 2, NAN], [1, 2, 3.0]]), equal_nan=True)


def test_word_level_tokenizer_is_unchanged(tiny_model):
    result = explain(tiny_model, "the cat sat on the mat", "random", continuation="the dog")
    out = merge_words(result)
    assert out.tokens == result.tokens and out.step_positions == result.step_positions
    torch.testing.assert_close(out.scores, result.scores, equal_nan=True)


def test_find_token_span_chat_template(tiny_model):
    result = explain(tiny_model, "the cat sat", "random", prompt_format="chat", continuation="yes")
    start, end = find_token_span(tiny_model, result, "the cat sat")
    assert result.tokens[start:end] == ("the", "cat", "sat")
    assert result.tokens[:start] == ("<s>", "user", ":")
    assert find_token_span(tiny_model.tokenizer, result.token_ids, "  cat ") == (start + 1, start + 2)


def test_find_token_span_occurrences(tiny_tokenizer):
    ids = tiny_tokenizer("the cat sat on the mat").input_ids
    assert find_token_span(tiny_tokenizer, ids, "the") == (0, 1)
    assert find_token_span(tiny_tokenizer, ids, "the", occurrence=-1) == (4, 5)
    assert find_token_span(tiny_tokenizer, ids, "on the mat") == (3, 6)
    with pytest.raises(InvalidInputError, match="'the' occurs 2 time"):
        find_token_span(tiny_tokenizer, ids, "the", occurrence=2)
    with pytest.raises(InvalidInputError, match="'dog' does not occur"):
        find_token_span(tiny_tokenizer, ids, "dog")
    with pytest.raises(InvalidInputError, match="empty"):
        find_token_span(tiny_tokenizer, ids, "  ")


def test_restrict_to_span_result():
    layer_head = torch.ones(2, 1, 2, 4)
    layer_head[0, ..., 3] = NAN
    result = make_result(["a", "b", "c", "d"], 3, [[1, 2, 6, NAN], [1, 1, 3, 4]], layer_head)
    out = restrict_to_span(result, (1, 3))
    torch.testing.assert_close(out.scores, torch.tensor([[0, 2, 6, NAN], [0, 1, 3, 0]]), equal_nan=True)
    expected_lh = torch.tensor([[0, 1, 1, NAN], [0, 1, 1, 0]])[:, None, None, :].expand(2, 1, 2, 4)
    torch.testing.assert_close(out.layer_head, expected_lh, equal_nan=True)
    renormed = restrict_to_span(result, (1, 3), renormalise="sum")
    expected = torch.tensor([[0, 0.25, 0.75, NAN], [0, 0.25, 0.75, 0]])
    torch.testing.assert_close(renormed.scores, expected, equal_nan=True)
    assert renormed.options["aggregation"] == ["span:1-3:sum"]
    # a minmax within the span ignores the blanked positions (their 0 would otherwise be the minimum)
    minmax = restrict_to_span(result, (1, 3), renormalise="minmax", outside=-1.0)
    torch.testing.assert_close(minmax.scores, torch.tensor([[-1, 0, 1, NAN], [-1, 0, 1, -1]]), equal_nan=True)
    for bad in [(2, 2), (0, 5), (-1, 2)]:
        with pytest.raises(InvalidInputError, match="not a non-empty range"):
            restrict_to_span(result, bad)
    with pytest.raises(InvalidInputError, match="renormalise='softmax' is invalid"):
        restrict_to_span(result, (1, 3), renormalise="softmax")


def test_restrict_to_span_tensor():
    scores = torch.tensor([[1.0, 2, NAN, NAN], [1, 1, 2, 4]])
    torch.testing.assert_close(
        restrict_to_span(scores, (1, 3)), torch.tensor([[NAN, 2, NAN, NAN], [NAN, 1, 2, NAN]]), equal_nan=True
    )
    torch.testing.assert_close(
        restrict_to_span(scores, (1, 3), renormalise="max", outside=0.0),
        torch.tensor([[0, 1, NAN, NAN], [0, 0.5, 1, 0]]),
        equal_nan=True,
    )


def test_user_text_only_end_to_end(tiny_model):
    result = explain(tiny_model, "the movie was great fun", "saliency", prompt_format="chat", max_new_tokens=2)
    span = find_token_span(tiny_model, result, "the movie was great fun")
    assert result.tokens[span[0] : span[1]] == ("the", "movie", "was", "great", "fun")
    user_only = restrict_to_span(result, span, renormalise="l1")
    torch.testing.assert_close(user_only.scores[:, span[0] : span[1]].sum(-1), torch.ones(result.n_steps))
    assert (user_only.scores[:, : span[0]] == 0).all()
    assert user_only.step_positions == result.step_positions and user_only.tokens == result.tokens


@pytest.mark.slow
def test_span_and_words_on_smollm2_tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    message = "Héllo wörld, this is unbelievable café!\nNew line"
    messages = [{"role": "user", "content": message}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = ids if isinstance(ids, list) else ids["input_ids"]
    start, end = find_token_span(tokenizer, ids, message)
    assert tokenizer.decode(ids[start:end]) == message
    tokens = tokenizer.convert_ids_to_tokens(ids[start:end])
    scores = [[1.0] * len(tokens)]
    words = merge_words(make_result(tokens, len(tokens), scores), special_tokens=tokenizer.all_special_tokens)
    assert len([w for w in words.tokens if w != "Ċ"]) == len(message.split())
    assert float(words.scores.sum()) == len(tokens)
