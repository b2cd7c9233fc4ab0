"""Model loading (built-in GGUF checkpoints, hub ids, loaded HF models) and capability probing."""

from .capabilities import ModelInfo, model_info
from .catalog import DEFAULT_MODEL, TINY_MODEL, builtin_model_names
from .loader import load_model, resolve_device, resolve_dtype

__all__ = [
    "DEFAULT_MODEL",
    "TINY_MODEL",
    "ModelInfo",
    "builtin_model_names",
    "load_model",
    "model_info",
    "resolve_device",
    "resolve_dtype",
]
