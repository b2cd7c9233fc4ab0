"""Dequantise a GGUF checkpoint once and cache it as a safetensors directory.

``transformers`` can read GGUF (``gguf_file=``) but dequantises every tensor on each load (~15-25 s
for a 135M model). The first load writes ``config.json``, ``model.safetensors`` and the tokenizer
files to ``<cache>/<name>-<sha>``; later loads are plain ``from_pretrained`` calls (< 1 s).
The directory is written under a temporary name and renamed, so an interrupted first load never
leaves a half-written cache behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .catalog import GGUFModelSpec, locate_gguf


def default_cache_dir() -> Path:
    """``$GRADELLM_LENS_CACHE``, else ``$XDG_CACHE_HOME/gradellm-lens``, else ``~/.cache/gradellm-lens``."""
    if env := os.environ.get("GRADELLM_LENS_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "gradellm-lens"


def _file_digest(path: Path) -> str:
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def cached_checkpoint(spec: GGUFModelSpec, cache_dir: str | Path | None = None) -> Path:
    """Return a directory loadable with ``from_pretrained`` holding ``spec``'s dequantised weights."""
    gguf_path = locate_gguf(spec)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"{spec.name}-{_file_digest(gguf_path)}"
    if (target / "model.safetensors").is_file():
        return target
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    model.config.architectures = [spec.architecture]
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=root))
    try:
        model.config.save_pretrained(staging)
        save_model(model, str(staging / "model.safetensors"))  # handles tied embeddings
        tokenizer.save_pretrained(staging)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(staging)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "model.safetensors").is_file():  # lost a race with another process: fine
            raise
    return target
