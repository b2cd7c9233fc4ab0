"""End to end: a half-precision model loads, explains and gives float32 scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import finite_in_prefix

import gradellm_lens as gl
from gradellm_lens import GradEllm, Step, Target


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_keeps_float32_scores(tiny_hf, tiny_tokenizer, tiny_ids, dtype):
    import copy

    model = gl.load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, dtype=dtype, device="cpu")
    assert next(model.parameters()).dtype == getattr(torch, dtype)
    result = gl.explain(model, tiny_ids[:8], max_new_tokens=2, layers="all")
    assert result.scores.dtype == torch.float32 and result.layer_head.dtype == torch.float32
    assert finite_in_prefix(result) and all(np.isfinite(result.target_logits))
    full = GradEllm(gl.load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu"), layers="all")
    steps = [Step(6, Target(int(tiny_ids[7])))]
    half, ref = GradEllm(model, layers="all").attribute(tiny_ids, steps), full.attribute(tiny_ids, steps)
    assert int(half.scores[0, :7].argmax()) == int(ref.scores[0, :7].argmax())
