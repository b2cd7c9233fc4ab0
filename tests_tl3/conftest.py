"""The TransformerLens 3.x tier: ``HookedTransformer`` models built offline, run in ``.venv-tl3``.

``scripts/setup-tl3.sh`` makes that virtualenv; ``make test`` (and so CI) runs this tier there.
Models are built without the hub: a ``HookedTransformerConfig`` from the Hugging Face config, and
the HF weights converted by TransformerLens' own ``convert_llama_weights``. The default fixtures
keep the HF numerics (no folding or centring, like ``from_pretrained_no_processing``) so that the
main tier's independent references on the HF model apply unchanged; ``*_processed`` fixtures apply
``from_pretrained``'s default processing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parents[1] / "tests"
# the main tier's independent references (reference.py, the captum and HF-attention oracles, evaldata)
sys.path.insert(0, str(TESTS))

try:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights
except ImportError:
    if os.environ.get("CI"):
        raise
    collect_ignore_glob = ["test_*.py"]  # TransformerLens 4.x has no HookedTransformer: nothing to run here


def _main_tier_conftest():
    spec = importlib.util.spec_from_file_location("main_tier_conftest", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the main tier's fixtures for the reference side: the pristine HF models, the tokenizer, the ids
_main = _main_tier_conftest()
_seed, tiny_tokenizer, tiny_hf, tiny_ids = _main._seed, _main.tiny_tokenizer, _main.tiny_hf, _main.tiny_ids
smollm2_dir, smollm2_hf = _main.smollm2_dir, _main.smollm2_hf
SMOLLM2_N_CTX = 2048  # HookedTransformer keeps an [n_ctx, n_ctx] mask per layer; 8192 would cost 2 GB


def llama_config(hf_config, n_ctx: int | None = None) -> HookedTransformerConfig:
    """The ``HookedTransformerConfig`` of a Hugging Face Llama-family config (what TL 3 derives from the hub)."""
    heads = hf_config.num_attention_heads
    rope = getattr(hf_config, "rope_parameters", None) or {}
    return HookedTransformerConfig(
        d_model=hf_config.hidden_size,
        d_head=hf_config.hidden_size // heads,
        n_heads=heads,
        n_key_value_heads=hf_config.num_key_value_heads if hf_config.num_key_value_heads != heads else None,
        d_mlp=hf_config.intermediate_size,
        n_layers=hf_config.num_hidden_layers,
        n_ctx=n_ctx or hf_config.max_position_embeddings,
        eps=hf_config.rms_norm_eps,
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.hidden_act,
        normalization_type="RMS",
        final_rms=True,
        gated_mlp=True,
        positional_embedding_type="rotary",
        rotary_dim=hf_config.hidden_size // heads,
        rotary_base=rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0)),
        rotary_adjacent_pairs=False,
        original_architecture="LlamaForCausalLM",
        dtype=torch.float32,
        device="cpu",
    )


def hooked_transformer(hf, tokenizer, *, processed: bool = False, n_ctx: int | None = None) -> HookedTransformer:
    """A ``HookedTransformer`` holding ``hf``'s weights; ``processed`` applies ``from_pretrained``'s defaults."""
    model = HookedTransformer(llama_config(hf.config, n_ctx), tokenizer=tokenizer)
    model.load_and_process_state_dict(
        convert_llama_weights(hf, model.cfg),
        fold_ln=processed,
        center_writing_weights=processed,
        center_unembed=processed,
        fold_value_biases=processed,
    )
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model(tiny_hf, tiny_tokenizer):
    """The main tier's ``tiny_model`` fixture, as a HookedTransformer with the HF numerics."""
    return hooked_transformer(tiny_hf, tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_model_processed(tiny_hf, tiny_tokenizer):
    """The same weights with ``from_pretrained``'s default processing (folded, centred)."""
    return hooked_transformer(tiny_hf, tiny_tokenizer, processed=True)


@pytest.fixture(scope="session")
def smollm2(smollm2_hf):
    """SmolLM2-135M-Instruct converted into a HookedTransformer (HF numerics), without the hub."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_hf.name_or_path)
    return hooked_transformer(smollm2_hf, tokenizer, n_ctx=SMOLLM2_N_CTX)
