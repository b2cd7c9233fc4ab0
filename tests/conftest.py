"""Shared fixtures: a tiny random Llama (unit tests) and the real SmolLM2 (``slow`` integration tests)."""

from __future__ import annotations

import copy
import os
import warnings

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
warnings.filterwarnings("ignore", message=".*deprecated.*")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    from gradellm_lens.models.tiny import tiny_tokenizer

    return tiny_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


@pytest.fixture(scope="session")
def tiny_hf():
    """A pristine (never bridged) tiny random Llama: the independent reference model."""
    from gradellm_lens.models.tiny import tiny_hf_model

    return tiny_hf_model("llama", seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_hf, tiny_tokenizer):
    """The same weights booted as a TransformerBridge (booting converts its HF model in place)."""
    from gradellm_lens import load_model

    return load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu")


@pytest.fixture
def tiny_ids(tiny_tokenizer):
    return torch.tensor(tiny_tokenizer("the cat sat on the mat because it was a good day").input_ids)


@pytest.fixture(scope="session")
def smollm2_dir():
    from gradellm_lens.models.catalog import GGUF_MODELS
    from gradellm_lens.models.gguf import cached_checkpoint

    return cached_checkpoint(GGUF_MODELS["smollm2-135m-instruct"])


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    from gradellm_lens import load_model

    return load_model("smollm2-135m-instruct", device="cpu")


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(smollm2_dir, attn_implementation="eager").eval()
