"""A tiny, seeded, randomly initialised decoder (Llama by default) with an offline word-level tokenizer.

Used by the unit tests, the benchmarks' "tiny" rows and the CLI's ``--model tiny-llama``. The
weights are random, so outputs mean nothing; what matters is that every code path of a real
Llama-family model (RoPE, GQA, RMSNorm, gated MLP, tied or untied unembedding) is exercised in
milliseconds. ``vocab_size`` differs from ``hidden_size`` on purpose (TransformerLens' unembedding
layout heuristic misbehaves on square matrices).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

TinyArchitecture = Literal["llama", "mistral", "qwen2", "gpt2", "opt"]

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
WORDS = (
    "the a an and or but not of to in on at for with is was are were be it this that he she they "
    "we you i cat dog sat mat ran home story why did because movie review film sentiment positive "
    "negative good bad great terrible boring fun yes no answer question passage true false "
    "classify following as : . , ? ! user assistant system name born was is who what when where "
    "love hate acting plot music actor actress best worst ever very really quite so too much more "
    "less one two three red blue green big small old new day night time man woman child"
).split()
CHAT_TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant :{% endif %}"
)


def tiny_vocab() -> dict[str, int]:
    """Token -> id map: the four special tokens, then the word list (deduplicated, order kept)."""
    tokens = list(dict.fromkeys(SPECIAL_TOKENS + WORDS))
    return {tok: i for i, tok in enumerate(tokens)}


def tiny_tokenizer(directory: str | Path):
    """Build the word-level tokenizer, save it to ``directory`` and reload it from there.

    The reload matters: TransformerLens re-reads tokenizers by ``name_or_path``, which an
    in-memory tokenizer does not have.
    """
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    directory = Path(directory)
    if not (directory / "tokenizer.json").is_file():
        backend = Tokenizer(WordLevel(tiny_vocab(), unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
        )
        backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
        tok = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            model_max_length=128,
        )
        tok.chat_template = CHAT_TEMPLATE
        tok.save_pretrained(directory)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)


def tiny_hf_model(architecture: TinyArchitecture = "llama", seed: int = 0, n_layers: int = 2):
    """A randomly initialised HF causal LM (eval mode, fp32) matching :func:`tiny_tokenizer`."""
    import transformers as tf

    vocab = len(tiny_vocab())
    common = dict(vocab_size=vocab, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if architecture in ("llama", "mistral", "qwen2"):
        config_cls = {
            "llama": tf.LlamaConfig,
            "mistral": tf.MistralConfig,
            "qwen2": tf.Qwen2Config,
        }[architecture]
        config = config_cls(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=n_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            tie_word_embeddings=False,
            **common,
        )
    elif architecture == "gpt2":
        config = tf.GPT2Config(n_embd=64, n_layer=n_layers, n_head=4, n_positions=128, **common)
    elif architecture == "opt":
        config = tf.OPTConfig(
            hidden_size=64,
            ffn_dim=128,
            num_hidden_layers=n_layers,
            num_attention_heads=4,
            max_position_embeddings=128,
            word_embed_proj_dim=64,
            **common,
        )
    else:
        raise ValueError(f"unknown tiny architecture {architecture!r}")
    config.architectures = [type(config).__name__.replace("Config", "ForCausalLM")]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = tf.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    return model.eval()
